"""Text and HTML summaries of :class:`bayes_glmm.ml.results.MLResults`.

The text mimics the layout of lme4's ``summary(glmer(...))`` / ``summary(lmer(...))`` so
that output can be compared side by side: header, information criteria, random-effects
table (Variance, Std.Dev., Corr), fixed-effects table with significance stars, and notes
on convergence and singular fits.  (Layout only; no lme4 code is used.)
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd

from ..covariance import cov_to_sd_corr

__all__ = ["format_summary", "summary_html", "format_pvalue", "signif_stars", "random_effects_table",
           "optimizer_lines"]

SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def format_pvalue(p: float) -> str:
    """R-style p-value text: 3 significant digits, ``"<2e-16"`` below machine precision."""
    if not np.isfinite(p):
        return "NA"
    if p < 2.2e-16:
        return "<2e-16"
    return f"{p:.3g}"


def signif_stars(p: float) -> str:
    """``***`` (<0.001), ``**`` (<0.01), ``*`` (<0.05), ``.`` (<0.1) or blank."""
    if not np.isfinite(p):
        return ""
    for cut, s in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return s
    return ""


def _decimals(values, lo: int = 3, hi: int = 7) -> int:
    """Decimals giving the smallest non-zero |value| about 4 significant digits."""
    a = np.abs(np.asarray(values, dtype=float))
    a = a[np.isfinite(a) & (a > 0)]
    if a.size == 0:
        return lo
    return int(np.clip(3 - np.floor(np.log10(a.min())), lo, hi))


def _header(res) -> list:
    fam = res.spec.family
    if res.spec.is_lmm and res.method in ("REML", "ML"):
        how = "REML" if res.reml else "maximum likelihood"
        lines = [f"Linear mixed model fit by {how}  [bayes_glmm MLResults]"]
    else:
        approx = ("Laplace Approximation" if res.n_agq <= 1
                  else f"Adaptive Gauss-Hermite Quadrature, nAGQ = {res.n_agq}")
        lines = [f"Generalized linear mixed model fit by maximum likelihood ({approx})  "
                 "[bayes_glmm MLResults]",
                 f" Family: {fam.display_name}  ( {fam.link.name} )"]
    lines.append(f"Formula: {res.spec.formula}")
    dropped = getattr(res.spec, "n_dropped", 0)
    lines.append(f"   Data: {res.nobs} rows" + (f" ({dropped} dropped for missing values)" if dropped else ""))
    if res.spec.has_zi:
        lines.append(f"{res.spec.family.zero_doc.split(' (')[0].capitalize()}: {res.spec.zi_formula}")
    if res.spec.has_disp:
        lines.append(f"Dispersion: {res.spec.disp_formula}")
    lines.append("")
    if res.reml:
        lines.append(f"REML criterion at convergence: {res.deviance:.4f}")
    else:
        crit = pd.DataFrame([[res.aic, res.bic, res.loglik, res.deviance, res.df_resid]],
                            columns=["AIC", "BIC", "logLik", "deviance", "df.resid"])
        crit = crit.astype(object)
        for c in ("AIC", "BIC", "logLik", "deviance"):
            crit[c] = [f"{float(crit[c].iloc[0]):.1f}"]
        lines.extend(crit.to_string(index=False).splitlines())
    return lines


def _five_numbers(v) -> list:
    """Scaled-residuals block: Min, 1Q, Median, 3Q, Max (R's quantile type 7)."""
    v = np.asarray(v, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return []
    q = np.quantile(v, [0.0, 0.25, 0.5, 0.75, 1.0])
    tab = pd.DataFrame([[f"{x:.4f}" for x in q]], columns=["Min", "1Q", "Median", "3Q", "Max"])
    return ["", "Scaled residuals: "] + tab.to_string(index=False).splitlines()


def _abbrev(name: str, width: int = 6) -> str:
    """R's ``abbreviate`` in spirit: ``(Intercept)`` -> ``(Intr)``, long names shortened."""
    if name == "(Intercept)":
        return "(Intr)"
    if len(name) <= width:
        return name
    head, rest = name[0], name[1:]
    rest = "".join(c for c in rest if c.lower() not in "aeiou") or rest
    return (head + rest)[:width]


def _abbrev_unique(names, width: int = 6) -> list:
    """:func:`_abbrev` of each name, lengthened where two would print alike, as R's
    ``abbreviate`` keeps its results unique: ``C(prd)2, C(prd)3`` rather than ``C(prd)`` twice."""
    names = [str(n) for n in names]
    out = [_abbrev(n, width) for n in names]
    longest = max((len(n) for n in names), default=0)
    while len(set(out)) < len(out) and width < longest:
        width += 1
        dup = {a for a in out if out.count(a) > 1}
        out = [_abbrev(n, width) if a in dup else a for n, a in zip(names, out)]
    return out if len(set(out)) == len(out) else names


def fixef_correlation_lines(res, max_p: int = 12) -> list:
    """lme4's "Correlation of Fixed Effects" block (lower triangle), for 1 < p <= max_p."""
    V = np.asarray(res.vcov, dtype=float)
    p = V.shape[0]
    if p < 2 or p > max_p or not np.all(np.isfinite(V)):
        return []
    sd = np.sqrt(np.clip(np.diag(V), 1e-300, None))
    C = V / np.outer(sd, sd)
    names = list(res.spec.fixed_names)
    ab = _abbrev_unique(names)
    rows = []
    for i in range(1, p):
        rows.append([f"{C[i, j]:.3f}" for j in range(i)] + [""] * (p - 1 - i))
    tab = pd.DataFrame(rows, index=ab[1:], columns=ab[:-1])
    return ["", "Correlation of Fixed Effects:"] + tab.to_string().splitlines()


def _g4(v: float) -> str:
    """4 significant digits keeping trailing zeros (16.00, 4.000), as R prints them."""
    return f"{v:#.4g}".rstrip(".") if v != 0 else "0"


def random_effects_table(res) -> pd.DataFrame:
    """The random-effects block of the summary: Groups, Name, Variance, Std.Dev., Corr...

    As glmmTMB prints the structures: a structure with one correlation parameter shows it
    once, labelled, on the term's first row (``0.77 (ar1)``, ``0.45 (cs)``), and one with a
    single shared SD (``ar1``) shows only its first coefficient's row; ``us`` and ``toep``
    show the lower triangle of the correlation matrix, uncorrelated terms no correlations.
    """
    rows = []
    qmax = max((t.q for t in res.spec.terms), default=1)
    for term, cov in zip(res.spec.terms, res.covs):
        sd, corr = cov_to_sd_corr(cov)
        cs, q = term.cov, term.q
        compact = bool(cs.title) and cs.n_corr(q) == 1
        n_rows = 1 if (cs.n_sd(q) == 1 and q > 1) else q
        for i, name in enumerate(term.coef_names[:n_rows]):
            row = [term.name if i == 0 else "", name, _g4(cov[i, i]), _g4(sd[i])]
            if compact:
                cells = [f"{float(cs.corr_values(corr)[0]):.2f} ({cs.title})"] if i == 0 else []
            else:
                cells = [f"{corr[i, j]:.2f}" if cs.n_corr(q) > 0 else "" for j in range(i)]
            row.extend(cells + [""] * (qmax - 1 - len(cells)))
            rows.append(row)
    if res.spec.is_lmm and res.sigma is not None:  # a GLMM's sigma: the dispersion lines
        rows.append(["Residual", "", _g4(res.sigma ** 2), _g4(res.sigma)] + [""] * (qmax - 1))
    corr_cols = ["Corr"] + [""] * (qmax - 2) if qmax > 1 else []
    cols = ["Groups", "Name", "Variance", "Std.Dev."] + [f"Corr{k}" for k in range(len(corr_cols))]
    df = pd.DataFrame(rows, columns=cols)
    df.columns = ["Groups", "Name", "Variance", "Std.Dev."] + corr_cols
    return df


def _fixed_table_text(res) -> tuple:
    tab = res.coef_table()
    return _table_text(tab), "Pr(>|z|)" in tab


def _num(v: float, decimals: int) -> str:
    """Fixed-point text; NaN prints as R's ``NA`` (an SE at a boundary is not available)."""
    return "NA" if np.isnan(v) else f"{v:.{decimals}f}"


def _table_text(tab: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=tab.index)
    out["Estimate"] = [_num(v, _decimals(tab["Estimate"])) for v in tab["Estimate"]]
    out["Std. Error"] = [_num(v, _decimals(tab["Std. Error"])) for v in tab["Std. Error"]]
    stat_col = "t value" if "t value" in tab else "z value"
    out[stat_col] = [_num(v, 3) for v in tab[stat_col]]
    if "Pr(>|z|)" in tab:
        out["Pr(>|z|)"] = [format_pvalue(p) for p in tab["Pr(>|z|)"]]
        out[" "] = [signif_stars(p) for p in tab["Pr(>|z|)"]]
    return out


def optimizer_lines(res) -> list:
    """lme4-like ``optimizer (...) convergence code: 0 (OK)`` block from ``res.optinfo``."""
    info = getattr(res, "optinfo", None)
    if not info:
        return []
    code = int(info.get("code", 0))
    parts = [f"max|grad| {info.get('max_abs_grad', float('nan')):.2g}"]
    crit = info.get("scaled_criterion", float("nan"))
    if np.isfinite(crit):
        parts.append(f"Newton decrement {crit:.2g}")
    if info.get("hessian_pd") is False:
        parts.append("Hessian not positive definite")
    if info.get("n_evals"):
        parts.append(f"{int(info['n_evals'])} evaluations")
    lines = [f"optimizer ({info.get('optimizer', 'L-BFGS-B')}) convergence code: {code} "
             f"({'OK' if code == 0 else 'not converged'}); " + ", ".join(parts)]
    if info.get("n_restarts"):
        lls = ", ".join(f"{v:.4f}" for v in info.get("restart_logliks", []))
        lines.append(f"  restarts: {info['n_restarts']} ({', '.join(info.get('restart_starts', []))}), "
                     f"logLik {lls}")
    if int(info.get("n_starts", 1)) > 1:
        lls = ", ".join(f"{v:.4f}" for v in info.get("start_logliks", []))
        lines.append(f"  starts: {info['n_starts']}, logLik {lls}"
                     + ("  (different optima: the best is kept)" if info.get("multimodal") else ""))
    for w in info.get("warnings", []):
        if not str(w).startswith("not converged"):
            lines.append(f"  warning: {w}")
    return lines


def _notes(res) -> list:
    notes = []
    if not res.converged:
        msgs = res.optimizer.get("messages") or []
        if isinstance(msgs, str):
            msgs = [msgs]
        notes.append("optimizer did not converge" + (": " + "; ".join(map(str, msgs)) if msgs else ""))
    if res.is_singular:
        notes.append("boundary (singular) fit: " + "; ".join(res.singular_terms))
    return notes


def _aligned(df: pd.DataFrame, left: tuple) -> list:
    """Rows of ``df`` as text, columns named in ``left`` left-aligned, the others right-aligned."""
    cols = list(df.columns)
    cells = [[str(c) for c in cols]] + [[str(v) for v in row] for row in df.itertuples(index=False)]
    widths = [max(len(r[j]) for r in cells) for j in range(len(cols))]
    out = []
    for r in cells:
        parts = [r[j].ljust(widths[j]) if (cols[j] in left or j >= 4 and r is cells[0]) else r[j].rjust(widths[j])
                 for j in range(len(cols))]
        out.append(" ".join(parts).rstrip())
    return out


def _aux_lines(res) -> list:
    """One line per auxiliary parameter of a GLMM's family (glmmTMB's "Dispersion parameter
    for ... family"; the others by their description): estimate, 95% CI and the SE on the
    scale it is estimated on."""
    fam = res.spec.family
    dt = res.dispersion_table()
    if dt.empty:
        return []
    out = [""]
    if fam.aux_table_title:  # clmm's "Threshold coefficients:" table: estimate, SE, z
        tab = pd.DataFrame({"Estimate": dt["Estimate"], "Std. Error": dt["SE(log)"],
                            "z value": dt["Estimate"] / dt["SE(log)"]})
        return out + [fam.aux_table_title] + tab.to_string(float_format=lambda v: f"{v:.4f}").split("\n")
    for j, a in enumerate(fam.aux_params):
        if a.name not in dt.index:  # modelled by a dispersion formula: its own block
            continue
        row = dt.loc[a.name]
        what = f"Dispersion parameter for {fam.name} family ({fam.variance_formula})" if j == 0 else \
            f"{a.description[:1].upper()}{a.description[1:]} ({fam.name} family)"
        scale = f"log {a.name}" if a.support == "positive" else a.name
        out.append(f"{what}: {a.name} = {_g4(float(row['Estimate']))} (95% CI {_g4(float(row['lower']))} to "
                   f"{_g4(float(row['upper']))}; SE of {scale} {float(row['SE(log)']):.3g})")
    return out


def format_summary(res) -> str:
    """The full text summary of an :class:`MLResults`, laid out like glmer's."""
    lines = _header(res)
    try:
        lines += _five_numbers(res.residuals(kind="pearson"))
    except (AttributeError, ValueError):
        pass
    lines += ["", "Random effects:"]
    re_tab = random_effects_table(res)
    lines += [" " + ln for ln in _aligned(re_tab, ("Groups", "Name"))]
    groups = "; ".join(f"{t.name}, {t.n_levels}" for t in res.spec.terms)
    lines.append(f"Number of obs: {res.nobs}, groups:  {groups}")
    lines += _aux_lines(res)
    lines += ["", "Conditional model:" if res.spec.has_zi else "Fixed effects:"]
    fx, has_p = _fixed_table_text(res)
    lines += fx.to_string().splitlines()
    if res.spec.has_zi:
        lines += ["", "Zero-inflation model:" if res.spec.zi_label == "zi"
                  else f"{res.spec.family.zero_doc.split(' (')[0].capitalize()} model ({res.spec.zi_label}):"]
        lines += _table_text(res.coef_table_zi()).to_string().splitlines()
    if res.spec.has_disp:
        first = res.spec.family.aux_params[0].name
        lines += ["", f"Dispersion model (log {first} ~ {res.spec.disp_formula.strip().lstrip('~').strip()}):"]
        lines += _table_text(res.coef_table_disp()).to_string().splitlines()
    if has_p:
        lines += ["---", SIGNIF_LEGEND]
    lines += fixef_correlation_lines(res)
    opt_lines = optimizer_lines(res)
    if opt_lines:
        lines += [""] + opt_lines
    notes = _notes(res)
    if notes:
        lines.append("")
        lines += notes
    return "\n".join(lines)


def summary_html(res) -> str:
    """HTML rendering for notebooks: header, random-effects and fixed-effects tables."""
    head = "<br>".join(html.escape(ln) for ln in _header(res) if ln)
    re_html = random_effects_table(res).to_html(index=False)
    fx, _ = _fixed_table_text(res)
    groups = ", ".join(f"{html.escape(t.name)}: {t.n_levels}" for t in res.spec.terms)
    notes = "".join(f"<p><i>{html.escape(n)}</i></p>" for n in optimizer_lines(res)[:1] + _notes(res))
    return (f"<div><p><b>{type(res).__name__}</b> ({html.escape(res.method)})<br>{head}</p>"
            f"<p>Random effects</p>{re_html}<p>Number of obs: {res.nobs}; groups: {groups}</p>"
            f"<p>Fixed effects</p>{fx.to_html()}{notes}</div>")
