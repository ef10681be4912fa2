"""``sampler="numpyro"``: numpyro's NUTS on a JAX log-density generated from the PyMC graph.

The log-density is not written again: PyTensor's JAX backend translates the graph of
:func:`bayes_glmm.bayes.graph.build_pymc_model` (through PyMC's public
``pymc.sampling.jax.get_jaxified_graph``), JAX differentiates it, and numpyro runs NUTS
entirely inside XLA.  Chains are vectorized (``jax.vmap``) on an accelerator and run one
after the other on a CPU, where measured on toenail vectorized chains were slower (every
chain waits for the longest trajectory of the batch).  It runs on a GPU when JAX sees one
(``jax.default_backend()``); nothing here requires one.

Needs the optional ``[jax]`` extra (``pip install "bayes_glmm[jax]"``: jax and numpyro).
"""
from __future__ import annotations

import numpy as np

__all__ = ["available", "sample_numpyro"]


def available() -> bool:
    """True when jax and numpyro import."""
    try:
        import jax  # noqa: F401
        import numpyro  # noqa: F401
    except ImportError:
        return False
    return True


def _layout(pm_model, point):
    """Names, shapes and slices of the value variables in one flat vector."""
    names = [v.name for v in pm_model.value_vars]
    shapes = [np.shape(point[n]) for n in names]
    sizes = [int(np.prod(s)) for s in shapes]
    offs = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    return names, shapes, offs


#: jittered starting points tried per chain before giving up (the jitter halves every 10 tries)
_INIT_TRIES = 40


def _finite_starts(value_and_grad, x0, chains: int, jitter: float, seed: int) -> np.ndarray:
    """One starting point per chain, ``x0`` plus U(-jitter, jitter), where the potential and its
    gradient are finite: numpyro never leaves a start with an infinite potential (its chain
    then stays there, every transition divergent), so such starts are redrawn, as PyMC does.

    Raises
    ------
    SamplerError
        When no finite start is found for some chain (the log-density is not finite near the
        graph's initial point: check the priors and the data).
    """
    from .failures import RC_INIT, SamplerError

    rng = np.random.default_rng(seed)
    starts = np.empty((chains, x0.size))
    for c in range(chains):
        for k in range(_INIT_TRIES):
            x = x0 + rng.uniform(-1.0, 1.0, size=x0.size) * jitter * 0.5 ** (k // 10)
            v, g = value_and_grad(x)
            if np.isfinite(float(v)) and np.all(np.isfinite(np.asarray(g))):
                starts[c] = x
                break
        else:
            raise SamplerError(f"numpyro: no starting point with a finite log-density and gradient for chain {c} "
                               f"in {_INIT_TRIES} jittered tries around the initial point; check the priors and "
                               "the data, or use sampler='native'", RC_INIT, [c], [])
    return starts


def sample_numpyro(pm_model, keep, *, draws, tune, chains, seed, target_accept, progressbar,
                   chain_method=None, init_jitter=1.0, **kwargs):
    """NUTS with numpyro on the graph's log-density.

    Parameters
    ----------
    pm_model : pymc.Model
    keep : list of str
        Model variables to return in ``posterior`` (Deterministics or free variables).
    draws, tune, chains : int
    seed : int
    target_accept : float
    progressbar : bool
    chain_method : {"sequential", "vectorized", "parallel"}, optional
        Default "vectorized" on an accelerator, "sequential" on the CPU.
    init_jitter : float
        Each chain starts at the graph's initial point plus U(-jitter, jitter).
    **kwargs
        Passed to ``numpyro.infer.NUTS`` (e.g. ``max_tree_depth``, ``dense_mass``).

    Returns
    -------
    (dict, dict)
        Posterior arrays (chain, draw, ...) by name and sampler statistics (``diverging``,
        ``n_steps``, ``acceptance_rate``, ``energy``).

    Raises
    ------
    ValueError
        The graph holds an operation PyTensor's JAX backend does not translate (erfcx, which
        the stable log Phi of a probit link uses), found before any sampling.
    """
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS
    from pymc.sampling.jax import get_jaxified_graph

    jax.config.update("jax_enable_x64", True)  # the graph is float64, as the other samplers
    point = pm_model.initial_point(random_seed=seed)
    names, shapes, offs = _layout(pm_model, point)
    try:
        logp = get_jaxified_graph(inputs=pm_model.value_vars, outputs=[pm_model.logp()])
    except NotImplementedError as err:  # an operation of the graph PyTensor cannot translate to JAX
        raise ValueError(f"sampler='numpyro' does not support this model: PyTensor's JAX backend cannot "
                         f"translate its log-density ({err}; e.g. erfcx, which the stable log Phi of the "
                         "probit link of the binary families uses); use sampler='auto' or 'nutpie'") from None

    def unflatten(x):
        return [x[offs[i]:offs[i + 1]].reshape(shapes[i]) for i in range(len(names))]

    def potential(x):
        return -logp(*unflatten(x))[0]

    x0 = np.concatenate([np.ravel(point[n]) for n in names])
    init = _finite_starts(jax.jit(jax.value_and_grad(potential)), x0, chains, init_jitter, seed)
    if chain_method is None:
        chain_method = "sequential" if jax.default_backend() == "cpu" else "vectorized"
    mcmc = MCMC(NUTS(potential_fn=potential, target_accept_prob=target_accept, **kwargs),
                num_warmup=tune, num_samples=draws, num_chains=chains, chain_method=chain_method,
                progress_bar=progressbar)
    mcmc.run(jax.random.PRNGKey(seed), init_params=jnp.asarray(init if chains > 1 else init[0]),
             extra_fields=("diverging", "num_steps", "accept_prob", "energy"))
    raw = np.asarray(mcmc.get_samples(group_by_chain=True)).reshape(chains, draws, -1)
    extra = mcmc.get_extra_fields(group_by_chain=True)
    # the reported variables as functions of the value variables, from the same graph
    outs = pm_model.replace_rvs_by_values([pm_model[n] for n in keep])
    expand = jax.jit(jax.vmap(lambda x: get_jaxified_graph(inputs=pm_model.value_vars, outputs=outs)(*unflatten(x))))
    vals = expand(jnp.asarray(raw.reshape(chains * draws, -1)))
    post = {n: np.asarray(v).reshape((chains, draws) + np.shape(v)[1:]) for n, v in zip(keep, vals)}
    stats = {"diverging": np.asarray(extra["diverging"]).reshape(chains, draws),
             "n_steps": np.asarray(extra["num_steps"]).reshape(chains, draws),
             "acceptance_rate": np.asarray(extra["accept_prob"]).reshape(chains, draws),
             "energy": np.asarray(extra["energy"]).reshape(chains, draws)}
    return post, stats
