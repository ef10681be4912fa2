"""Bundled example datasets: ``bayes_glmm.datasets.load(name)``.

Sources and licences are in ``bayes_glmm/datasets/data/PROVENANCE.md``; the files are
exported from R packages by ``make_datasets.R`` beside this module.
"""
from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["load", "available", "DESCRIPTIONS"]

DESCRIPTIONS = {
    "toenail": "Toenail onycholysis trial (HSAUR3): 1908 visits of 294 patients; binary Response, "
               "Treatment (1 = terbinafine), Month. Seed 002's logistic GLMM example.",
    "epilepsy": "Epileptic seizure counts (HSAUR3), seed 002 long form: 295 rows, 59 patients; count, "
                "weeks (8 baseline, 2 follow-up), visit, group (1 = progabide), followup.",
    "cbpp": "Contagious bovine pleuropneumonia (lme4): incidence out of size, 15 herds x 4 periods.",
    "sleepstudy": "Sleep deprivation reaction times (lme4): 18 subjects x 10 days.",
}

# column dtypes that CSV cannot carry: identifiers and periods are factors, not numbers
_CATEGORICAL = {
    "toenail": ["ID"],
    "epilepsy": ["id"],
    "cbpp": ["herd", "period"],
    "sleepstudy": ["Subject"],
}


def available() -> list[str]:
    """Names accepted by :func:`load`."""
    return sorted(DESCRIPTIONS)


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset as a new DataFrame.

    Parameters
    ----------
    name : str
        One of :func:`available` (``"toenail"``, ``"epilepsy"``, ``"cbpp"``, ``"sleepstudy"``).

    Returns
    -------
    pandas.DataFrame
        Grouping identifiers are pandas categoricals ordered like R's factor levels.

    Examples
    --------
    >>> from bayes_glmm import datasets
    >>> datasets.load("toenail").shape
    (1908, 5)
    """
    if name not in DESCRIPTIONS:
        raise ValueError(f"unknown dataset {name!r}; available: {available()}")
    path = resources.files(__package__).joinpath("data", f"{name}.csv")
    with resources.as_file(path) as p:
        df = pd.read_csv(p)
    for col in _CATEGORICAL[name]:
        values = df[col]
        cats = sorted(values.unique(), key=lambda v: (str(type(v)), v))
        df[col] = pd.Categorical(values, categories=cats)
    if name == "epilepsy":
        df["followup"] = df["followup"].astype(bool)
    return df
