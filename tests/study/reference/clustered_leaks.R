# Reference numbers for the per-level cement-leak rate with levels clustered within patients
# (tests/study/test_safety.py).  Run from this directory:
#   Rscript clustered_leaks.R > clustered_leaks_R.csv
# Input: clustered_leaks.csv (hand-made: 26 levels in 12 patients).  Needs R with the boot package.
# Output CSV (quantity,value):
#   naive exact CI (binom.test); the cluster-robust variance computed twice, by the ratio formula and from
#   glm()'s intercept-only logistic fit (bread and per-patient score sums); the logit Wald interval;
#   boot's percentile interval with a large number of resamples, and the Monte-Carlo SD of each limit
#   over repeated bootstraps of 2000 resamples; boot's percentile limits (norm.inter) of a fixed vector.
suppressPackageStartupMessages(library(boot))
d <- read.csv("clustered_leaks.csv", stringsAsFactors = FALSE)
y <- tapply(d$leak, d$patient, sum)
m <- tapply(d$leak, d$patient, length)
K <- length(y); Y <- sum(y); M <- sum(m); p <- Y / M
out <- list()
ci <- binom.test(Y, M)$conf.int
out$x <- Y; out$n_levels <- M; out$n_patients <- K; out$proportion <- p
out$ci_low <- ci[1]; out$ci_high <- ci[2]
# sandwich by the ratio formula
v1 <- K / (K - 1) * sum((y - p * m)^2) / M^2
# sandwich from glm: bread = (sum p(1-p))^-1 on the logit scale, meat = sum over patients of the score sum squared
fit <- glm(leak ~ 1, family = binomial, data = d)
ph <- fitted(fit)
u <- tapply(d$leak - ph, d$patient, sum)
v_logit <- K / (K - 1) * sum(u^2) / sum(ph * (1 - ph))^2
out$robust_se <- sqrt(v1)
out$robust_se_from_glm <- sqrt(v_logit) * p * (1 - p)
out$design_effect <- v1 / (p * (1 - p) / M)
z <- qnorm(0.975)
b <- coef(fit)[[1]]
out$robust_ci_low <- plogis(b - z * sqrt(v_logit)); out$robust_ci_high <- plogis(b + z * sqrt(v_logit))
# cluster bootstrap: resample patients
pd <- data.frame(y = as.numeric(y), m = as.numeric(m))
stat <- function(x, i) sum(x$y[i]) / sum(x$m[i])
set.seed(20261204)
big <- boot(pd, stat, R = 200000)
bci <- boot.ci(big, type = "perc")$percent[4:5]
out$boot_large_ci_low <- bci[1]; out$boot_large_ci_high <- bci[2]
reps <- t(replicate(200, boot.ci(boot(pd, stat, R = 2000), type = "perc")$percent[4:5]))
out$boot2000_mc_sd_low <- sd(reps[, 1]); out$boot2000_mc_sd_high <- sd(reps[, 2])
# boot's percentile limits of fixed vectors (the interpolation rule): 2000 and 1999 values
tv <- (((1:2000) * 7919) %% 2003) / 2003
nl <- boot:::norm.inter(tv, c(0.025, 0.975))[, 2]
out$norm_inter_2000_low <- nl[1]; out$norm_inter_2000_high <- nl[2]
nl <- boot:::norm.inter(tv[1:1999], c(0.025, 0.975))[, 2]
out$norm_inter_1999_low <- nl[1]; out$norm_inter_1999_high <- nl[2]
cat("quantity,value\n")
for (k in names(out)) cat(sprintf("%s,%.12g\n", k, out[[k]]))
