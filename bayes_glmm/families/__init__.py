"""Response families and link functions, defined once for both estimation paths.

Each family is one module in this folder (a :class:`~bayes_glmm.families.base.Family`
subclass) and one line in :data:`REGISTRY` below; :func:`register_family` adds one at run time.
Everything about a family -- its links, aliases, auxiliary parameters (with their default
priors and ML starts), log-density written once against a math namespace ``ops``, derivatives,
mean/variance, simulation, response checks, R's name for it -- lives in its module, so that
no code outside this folder tests a family's name (``tests/test_family_registry.py`` holds
that).  See ``docs/families.md``, "Adding a family".

Families
--------
``gaussian``  identity (default) or log link; needs ``sigma``.
``bernoulli`` 0/1 response; logit (default), probit or cloglog.
``binomial``  successes out of ``trials``; logit (default), probit or cloglog.
``poisson``   counts; log link.
``negbinomial`` counts, variance mu + mu^2/theta (NB2; aliases ``nbinom2``, ``negativebinomial``); log link.
``nbinom1``   counts, variance mu (1 + phi) (glmmTMB's NB1); log link.
``gamma``     y > 0, variance mu^2 / shape; log (default), inverse or identity link.
``beta``      0 < y < 1, variance mu (1 - mu) / (1 + phi); logit (default), probit or cloglog.
``hurdle_poisson``, ``hurdle_negbinomial`` counts with P(y = 0) = expit(eta_hu) (``hu=``) and a
              zero-truncated Poisson / NB2 for y > 0; log link.
``ordinal``   ordered categories, P(Y <= k) = F(tau_k - eta) (``ordinal::clmm``; alias ``cumulative``).

Zero inflation (the count families) is a mixture with a structural zero of probability
``expit(eta_zi)``: :func:`zi_loglik` turns any conditional log-density into the zero-inflated one.
A hurdle family's zero part (``hu=``) is the same second linear predictor combined by
:func:`hurdle_loglik` (each family's :meth:`Family.zero_part_loglik` says which).
"""
from __future__ import annotations

import difflib

from ..ops.numpy_ops import NUMPY_OPS, softplus_and_expit
from .base import AuxParam, Family
from .bernoulli import Bernoulli
from .beta import Beta
from .betabinomial import BetaBinomial
from .binomial import Binomial
from .gamma import Gamma
from .gaussian import Gaussian
from .hurdle import hurdle_eta_derivs, hurdle_loglik
from .hurdle_negbinomial import HurdleNegBinomial
from .hurdle_poisson import HurdlePoisson
from .links import LINKS, Link
from .nbinom1 import NBinom1
from .ordinal import Ordinal
from .negbinomial import NegBinomial
from .poisson import Poisson
from .student_t import StudentT
from .table import docs_table as _docs_table
from .zi import zi_eta_derivs, zi_loglik

__all__ = ["Link", "Family", "AuxParam", "get_family", "register_family", "unregister_family", "family_class",
           "zi_families", "zero_part_families", "docs_table", "softplus_and_expit",
           "NUMPY_OPS", "FAMILIES", "LINKS", "DISPERSION", "ZI_FAMILIES", "ALIASES", "REGISTRY",
           "zi_loglik", "zi_eta_derivs", "hurdle_loglik", "hurdle_eta_derivs"]

#: name -> family class: one line per family
REGISTRY: dict[str, type[Family]] = {}
#: links allowed per family; the first is the default (kept in step with :data:`REGISTRY`)
FAMILIES: dict[str, tuple[str, ...]] = {}
#: other names users write for a family -> its registry name
ALIASES: dict[str, str] = {}
#: name of each family's first auxiliary parameter (gaussian's residual SD is ``sigma``)
DISPERSION: dict[str, str] = {}
#: families that admit zero inflation (``zi=``)
ZI_FAMILIES: tuple[str, ...] = ()


def register_family(cls: type[Family]) -> type[Family]:
    """Register a :class:`Family` subclass under its ``name`` and ``aliases`` (usable as a
    class decorator).  Re-registering a name replaces it (a family reloaded in a session).

    Raises
    ------
    ValueError
        A family without a name or links, a link outside :data:`LINKS`, or an alias that
        names another family.
    """
    global ZI_FAMILIES
    if not (isinstance(cls, type) and issubclass(cls, Family)):
        raise ValueError(f"register_family takes a Family subclass; got {cls!r}")
    name = cls.name
    if not name or not cls.links:
        raise ValueError(f"family class {cls.__name__} needs a name and at least one link")
    bad = [lk for lk in cls.links if lk not in LINKS]
    if bad:
        raise ValueError(f"family {name!r}: unknown link(s) {bad}; choose from {list(LINKS)}")
    if name in ALIASES:
        raise ValueError(f"family name {name!r} is already an alias of family {ALIASES[name]!r}")
    for a in cls.aliases:
        if a in REGISTRY and a != name or ALIASES.get(a, name) != name:
            raise ValueError(f"family {name!r}: alias {a!r} already names family {ALIASES.get(a, a)!r}")
    REGISTRY[name] = cls
    FAMILIES[name] = tuple(cls.links)
    ALIASES.update({a: name for a in cls.aliases})
    if cls.aux_params:
        DISPERSION[name] = cls.aux_params[0].name
    else:
        DISPERSION.pop(name, None)
    ZI_FAMILIES = zi_families()
    return cls


def unregister_family(name: str) -> None:
    """Remove a registered family and its aliases (a test's or a session's own family)."""
    global ZI_FAMILIES
    cls = REGISTRY.pop(name)
    FAMILIES.pop(name, None)
    DISPERSION.pop(name, None)
    for a in cls.aliases:
        if ALIASES.get(a) == name:
            del ALIASES[a]
    ZI_FAMILIES = zi_families()


def docs_table() -> str:
    """The families table of ``docs/families.md`` (Markdown), from the registry."""
    return _docs_table(REGISTRY.values())


def zi_families() -> tuple:
    """Names of the registered families that admit zero inflation (``zi=``)."""
    return tuple(n for n, c in REGISTRY.items() if c.allows_zi)


def zero_part_families(label: str) -> tuple:
    """Names of the registered families whose zero part is ``label`` (``"hu"``: the hurdles)."""
    return tuple(n for n, c in REGISTRY.items() if c.zero_label == label and (c.allows_zi or c.zero_default))


def family_class(name: str) -> type[Family]:
    """The registered class of a family name or alias (case-insensitive).

    Raises
    ------
    ValueError
        Unknown name, with the closest registered name and the choices.
    """
    if not isinstance(name, str):
        raise ValueError(f"family must be a string such as 'bernoulli'; got {name!r}")
    key = name.lower().strip()
    key = ALIASES.get(key, key)
    if key not in REGISTRY:
        close = difflib.get_close_matches(key, list(REGISTRY) + list(ALIASES), n=1)
        hint = f" (did you mean {ALIASES.get(close[0], close[0])!r}?)" if close else ""
        raise ValueError(f"unknown family {name!r}{hint}; choose one of {sorted(REGISTRY)}")
    return REGISTRY[key]


def get_family(family: str | Family = "gaussian", link: str | None = None) -> Family:
    """Return a :class:`Family`, validating family and link names.

    Parameters
    ----------
    family : str or Family
        A registered name (:data:`FAMILIES`) or an alias in :data:`ALIASES` (``"nbinom2"``,
        ``"normal"``), or a Family (returned as is, or with another link).
    link : str, optional
        Defaults to the family's first (canonical) link.

    Raises
    ------
    ValueError
        Unknown family or a link the family does not support, naming the choices.
    """
    if isinstance(family, Family):
        if link is None or link == family.link.name:
            return family
        cls, fam = type(family), family.name
    else:
        cls = family_class(family)
        fam = cls.name
    lk = cls.links[0] if link is None else str(link).lower()
    if lk not in cls.links:
        raise ValueError(f"link {link!r} is not available for family {fam!r}; choose one of {list(cls.links)}")
    return cls(Link(lk))


#: the registry: one line per family (its module is the rest)
for _cls in (Gaussian, Bernoulli, Binomial, Poisson, NegBinomial, NBinom1, Gamma, Beta, StudentT, BetaBinomial,
             HurdlePoisson, HurdleNegBinomial,
             Ordinal):
    register_family(_cls)
