"""Inference that takes an ML fit: likelihood-ratio tests, ANOVA tables, parametric
bootstrap, profile likelihood and denominator degrees of freedom (Satterthwaite,
Kenward-Roger).  Results classes reach them through ``bayes_glmm.ml.methods``."""
