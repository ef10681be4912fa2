"""After the fit: anything that takes fitted results (ML or Bayesian) -- comparison,
marginal means and effects, variance decompositions (ICC), GEE for the marginal
contrast, diagnostics and plots.  The results classes never import these modules."""
