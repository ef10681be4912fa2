"""The family extension point: the registry, the single home of family knowledge, and a new family.

(a) every registered family round-trips ``get_family``, its aliases and pickle; (b) no module outside
``bayes_glmm/families/`` tests a family's or a link's name (an AST scan); (c) a family defined here,
one class plus one ``register_family`` line, is usable by ``get_family``, ``GLMM`` and ``fit_ml``
through PIRLS/Laplace; (d) the families table of ``docs/families.md`` is the registry's.
"""
import ast
import pathlib
import pickle

import numpy as np
import pandas as pd
import pytest
from scipy import special

import bayes_glmm as bg
from bayes_glmm import families as fm
from bayes_glmm.families import AuxParam, Family, get_family
from bayes_glmm.priors import Prior

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "bayes_glmm"

#: the only folder allowed to test family names: the families' own home
ALLOWED = ("bayes_glmm/families/",)

ALL_FAMILY_LINKS = [(name, lk) for name, links in fm.FAMILIES.items() for lk in links]


# --------------------------------------------------------------------------- (a) the registry
@pytest.mark.parametrize("name,link", ALL_FAMILY_LINKS)
def test_every_family_round_trips(name, link):
    fam = get_family(name, link)
    assert isinstance(fam, Family) and fam.name == name and fam.link.name == link
    assert get_family(name.upper(), link) == fam
    assert get_family(fam) is fam and get_family(fam, link) is fam
    back = pickle.loads(pickle.dumps(fam))
    assert back == fam and hash(back) == hash(fam) and type(back) is type(fam)
    assert {fam: 1}[get_family(name, link)] == 1
    with pytest.raises(AttributeError):
        fam.link = fm.Link("log")
    for alias in type(fam).aliases:
        assert fm.ALIASES[alias] == name
        assert get_family(alias, link) == fam
    other = [lk for lk in fm.FAMILIES[name] if lk != link]
    if other:
        assert get_family(fam, other[0]) == get_family(name, other[0]) != fam


@pytest.mark.parametrize("name", list(fm.REGISTRY))
def test_registry_views_agree_with_the_classes(name):
    cls = fm.REGISTRY[name]
    fam = cls()
    assert fm.FAMILIES[name] == cls.links and fam.link.name == cls.links[0]
    assert fm.DISPERSION.get(name) == fam.dispersion_name
    assert (name in fm.zi_families()) == cls.allows_zi
    names = [a.name for a in cls.aux_params]
    assert len(set(names)) == len(names)
    assert fam.has_sigma == ("sigma" in names)
    assert fam.has_dispersion == (bool(names) and names[0] != "sigma")
    for aux in cls.aux_params:
        assert isinstance(aux, AuxParam) and aux.support in ("positive", "real", "ordered") and aux.description
        kind, params = aux.default_prior({"y_sd": 2.0, "y_mean": 3.0})
        assert isinstance(Prior(kind, **params), Prior)
        lo, hi = aux.start_range
        assert lo <= aux.ml_start(3.0, 12.0) <= hi


def test_unknown_family_and_link_name_the_choices():
    with pytest.raises(ValueError, match="did you mean 'poisson'"):
        get_family("poison")
    with pytest.raises(ValueError, match="choose one of"):
        get_family("poisson", "logit")


def test_aux_parameters_by_name_and_by_legacy_keyword():
    fam = get_family("negbinomial")
    y, eta = np.array([0.0, 3.0, 10.0]), np.array([0.1, 1.0, 2.0])
    np.testing.assert_array_equal(fam.loglik(y, eta, theta=2.5), fam.loglik(y, eta, disp=2.5))
    np.testing.assert_array_equal(fam.loglik(y, eta, theta=2.5, sigma=None), fam.loglik(y, eta, disp=2.5))
    with pytest.raises(TypeError, match="theta"):
        fam.loglik(y, eta, shape=2.5)
    g = get_family("gaussian")
    np.testing.assert_array_equal(g.loglik(y, eta, sigma=1.5), g.loglik(y, eta, disp=1.5))


# --------------------------------------------------------------------------- (b) no name tests outside
def _subject(node) -> bool:
    """``family``, ``fam``, ``link``, ``spec.family``, ``resp.family.link``, ... (what names a family/link)."""
    if isinstance(node, ast.Name):
        return "fam" in node.id or "link" in node.id
    if isinstance(node, ast.Attribute):
        return "fam" in node.attr or "link" in node.attr
    return False


def _is_name_of_subject(node) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "name" and _subject(node.value)


def _family_literals(node) -> list:
    names = set(fm.REGISTRY) | set(fm.ALIASES)
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in names]
    return []


def name_tests(source: str) -> list:
    """(line, text) of every place that tests a family's or a link's name in ``source``:
    a comparison with ``<family or link>.name``, a comparison of a family/link variable with a
    family-name literal, or a tuple/list/set/dict-key table of two or more family names."""
    tree = ast.parse(source)
    out = []
    for node in ast.walk(tree):
        hit = False
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            hit = any(_is_name_of_subject(o) for o in operands) or (
                any(_family_literals(o) for o in operands) and any(_subject(o) for o in operands))
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            hit = len(_family_literals(node)) >= 2
        elif isinstance(node, ast.Dict):
            hit = sum(bool(k is not None and _family_literals(k)) for k in node.keys) >= 2
        if hit:
            out.append((node.lineno, ast.get_source_segment(source, node)))
    return out


def test_the_scan_finds_name_tests():
    src = ("if fam.name == 'poisson': pass\n"
           "if spec.family.link.name in ('log', 'identity'): pass\n"
           "if family == 'binomial': pass\n"
           "KINDS = ('bernoulli', 'binomial')\n"
           "R = {'gamma': 'Gamma', 'negbinomial': 'nbinom2'}\n"
           "ok = key == 'beta' or 'beta' in start or f'{fam.name}'\n")
    assert [ln for ln, _ in name_tests(src)] == [1, 2, 3, 4, 5]


def test_no_module_outside_families_tests_a_family_name():
    found = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(ALLOWED):
            continue
        found += [f"{rel}:{ln}: {text}" for ln, text in name_tests(path.read_text())]
    assert not found, ("code outside bayes_glmm/families tests a family or link name; ask the family "
                       "(an attribute or method of Family/Link) instead:\n" + "\n".join(found))


# --------------------------------------------------------------------------- (c) a new family
class ToyPoisson(Family):
    """A Poisson clone under another name: the whole of a new family (non-canonical on purpose,
    so PIRLS takes the generic IRLS path through ``mu_eta`` and ``variance``)."""

    name = "toy_poisson"
    links = ("log",)
    aliases = ("toypois",)
    is_count = True
    constant_response_unbounded = True
    response_doc = "counts"
    variance_doc = "μ"

    def _variance(self, mu, ops):
        return mu

    def mustart(self, y, n_trials=1.0, weights=1.0):
        return np.asarray(y, dtype=float) + 0.1

    def _random(self, mu, rng, *, trials=None):
        return rng.poisson(mu)

    def _loglik(self, y, eta, ops, *, trials=None):
        mu = self.link.inverse(eta, ops)
        return y * ops.log(mu) - mu - ops.gammaln(y + 1.0)

    def _loglik_constant(self, y, trials):
        return -special.gammaln(y + 1.0)

    def _mu_derivs(self, y, eta, *, trials=None):
        mu = self.link.inverse(eta)
        return y / mu - 1.0, -y / (mu * mu), 1.0 / mu

    def _check_response(self, y, trials, name):
        if np.any(y < 0) or np.any(y != np.round(y)):
            raise ValueError(f"toy_poisson response {name!r} must be non-negative integer counts")


@pytest.fixture
def toy_registered():
    fm.register_family(ToyPoisson)  # the one registry line
    yield ToyPoisson
    fm.unregister_family("toy_poisson")
    assert "toy_poisson" not in fm.FAMILIES and "toypois" not in fm.ALIASES


def test_a_registered_family_is_usable_by_get_family(toy_registered):
    fam = get_family("toypois")
    assert type(fam) is ToyPoisson and fam == get_family("toy_poisson", "log")
    assert pickle.loads(pickle.dumps(fam)) == fam
    assert "toy_poisson" in fm.docs_table()
    with pytest.raises(ValueError, match="alias"):
        class Clash(ToyPoisson):
            name = "clash"
            aliases = ("nbinom2",)
        fm.register_family(Clash)
    with pytest.raises(ValueError, match="already an alias"):
        class Renamed(ToyPoisson):
            name = "nbinom2"
            aliases = ()
        fm.register_family(Renamed)
    assert "clash" not in fm.FAMILIES and fm.ALIASES["nbinom2"] == "negbinomial"
    rng = np.random.default_rng(0)
    eta = rng.normal(1.0, 0.5, 200)
    y = fam.random(eta, rng).astype(float)
    np.testing.assert_allclose(fam.loglik(y, eta), get_family("poisson").loglik(y, eta), rtol=1e-12)


def test_a_registered_family_fits_by_ml_through_pirls(toy_registered):
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(25), 8)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(0.4 + 0.3 * x + rng.normal(0, 0.6, 25)[g]))
    df = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    toy = bg.GLMM("y ~ x + (1 | g)", df, family="toy_poisson").fit_ml()
    ref = bg.GLMM("y ~ x + (1 | g)", df, family="poisson").fit_ml()
    # the Laplace approximation of a log-link Poisson is the same whichever weights PIRLS uses
    # (observed = expected information for the canonical link)
    assert toy.loglik == pytest.approx(ref.loglik, abs=1e-6)
    np.testing.assert_allclose(toy.fixef, ref.fixef, atol=1e-4)
    assert "Family: toy_poisson  ( log )" in str(toy)
    with pytest.raises(ValueError, match="toy_poisson response"):
        bg.GLMM("x ~ 1 + (1 | g)", df, family="toy_poisson")


# --------------------------------------------------------------------------- (d) the docs table
def test_the_docs_families_table_is_the_registry():
    text = (ROOT / "docs" / "families.md").read_text()
    from bayes_glmm.families.table import TABLE_BEGIN, TABLE_END
    assert TABLE_BEGIN in text and TABLE_END in text
    table = text.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0].strip()
    assert table == fm.docs_table(), ("docs/families.md's table is out of date; paste the output of "
                                      "python -c 'import bayes_glmm.families as f; print(f.docs_table())'")
