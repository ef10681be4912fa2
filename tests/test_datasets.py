"""Bundled datasets: shapes, codings and provenance as documented."""
import pytest

import bayes_glmm as bg


def test_toenail_matches_seed_002_layout():
    df = bg.datasets.load("toenail")
    assert list(df.columns) == ["ID", "Response", "Treatment", "Month", "Visit"]
    assert df.shape == (1908, 5)
    assert df["ID"].nunique() == 294
    assert set(df["Response"].unique()) == {0, 1}
    assert df["Treatment"].value_counts().to_dict() == {1: 971, 0: 937}
    assert df["Visit"].min() == 1 and df["Visit"].max() == 7


def test_epilepsy_long_form():
    df = bg.datasets.load("epilepsy")
    assert df.shape == (295, 6)
    assert df["id"].nunique() == 59
    base = df[df["visit"] == 0]
    assert len(base) == 59 and (base["weeks"] == 8).all() and (~base["followup"]).all()
    fu = df[df["visit"] > 0]
    assert len(fu) == 236 and (fu["weeks"] == 2).all() and fu["followup"].all()
    # patient 1 of Thall & Vail: baseline 11 over 8 weeks, then 5, 3, 3, 3
    assert df[df["id"] == 1]["count"].tolist() == [11, 5, 3, 3, 3]
    assert df.groupby("id", observed=True)["group"].nunique().max() == 1


def test_cbpp_and_sleepstudy():
    cb = bg.datasets.load("cbpp")
    assert cb.shape == (56, 4) and cb["herd"].nunique() == 15
    assert (cb["incidence"] <= cb["size"]).all()
    ss = bg.datasets.load("sleepstudy")
    assert ss.shape == (180, 3) and ss["Subject"].nunique() == 18
    assert ss["Reaction"].iloc[0] == pytest.approx(249.56)


def test_each_load_is_a_fresh_copy():
    a = bg.datasets.load("toenail")
    a.loc[0, "Response"] = 99
    assert bg.datasets.load("toenail").loc[0, "Response"] != 99


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ValueError, match="available"):
        bg.datasets.load("toenails")
