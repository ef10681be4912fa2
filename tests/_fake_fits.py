"""Small duck-typed fits for fast tests of compare / marginal / variance (no MCMC)."""
from __future__ import annotations

import numpy as np
import pandas as pd


class FakePosterior:
    """Posterior-like fit: ``spec`` and an ``idata`` laid out as bayes_glmm.bayes writes it.

    Parameters
    ----------
    spec : ModelSpec
    beta : (S, p) draws
    sds : list of (S, q_k) draws, one per term
    corrs : list of (S, q_k, q_k) or None per term
    b : list of (S, J_k, q_k) or None
    sigma : (S,) or None
    """

    method = "posterior (fake)"

    def __init__(self, spec, beta, sds, corrs=None, b=None, sigma=None):
        import arviz as az

        self.spec = spec
        post = {"beta": np.asarray(beta)[None]}
        for k, term in enumerate(spec.terms):
            post[f"sd_{term.ident}"] = np.asarray(sds[k])[None]
            if corrs is not None and corrs[k] is not None:
                post[f"corr_{term.ident}"] = np.asarray(corrs[k])[None]
            bk = (np.asarray(b[k]) if b is not None else
                  np.zeros((np.asarray(beta).shape[0], term.n_levels, term.q)))
            post[f"b_{term.ident}"] = bk[None]
        if sigma is not None:
            post["sigma"] = np.asarray(sigma)[None]
        self.idata = az.from_dict(posterior=post)

    @property
    def fixef(self) -> pd.Series:
        return pd.Series(np.asarray(self.idata.posterior["beta"]).reshape(-1, self.spec.p).mean(0),
                         index=list(self.spec.fixed_names))
