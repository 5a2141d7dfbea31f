## Reference values for spinereg.stats.paired_change(method = "wilcoxon", exact = FALSE).
##
## Run from this folder:   Rscript make_hl_reference.R
## Writes hl_normal_reference.csv (one row per case and confidence level).
## Inputs and outputs are written with sprintf("%a") (hexadecimal floating point) so
## that both R and Python read back the very same doubles; the *_dec columns repeat
## the outputs in decimal for reading only.
##
## The call, for every row:
##   wilcox.test(after, before, paired = TRUE, exact = FALSE, correct = TRUE,
##               conf.int = TRUE, conf.level = conf_level)
## (R defaults otherwise: alternative = "two.sided", mu = 0, tol.root = 1e-4,
##  digits.rank = Inf).

hex <- function(v) paste(ifelse(is.na(v), "NA", sprintf("%a", v)), collapse = " ")
hex1 <- function(v) if (is.na(v)) "NA" else sprintf("%a", v)

cases <- list()
add <- function(name, before, after) cases[[length(cases) + 1]] <<- list(name = name, before = before, after = after)

## hand-made cases: ties, zeros, degenerate samples
add("odi_ties_zeros_n8", c(40, 52, 38, 60, 44, 30, 50, 46), c(22, 52, 20, 40, 24, 30, 32, 28))
add("nrs_many_ties_n10", c(8, 7, 9, 6, 8, 7, 8, 9, 5, 7), c(3, 4, 3, 2, 3, 4, 2, 3, 5, 3))
add("all_pairs_equal_n6", c(3, 5, 2, 7, 1, 4), c(3, 5, 2, 7, 1, 4))
add("all_differences_equal_n5", c(10, 20, 30, 40, 50), c(12, 22, 32, 42, 52))
add("equal_nonzero_with_zeros_n7", c(1, 2, 3, 4, 5, 6, 7), c(1, 2, 3, 7, 8, 9, 10))
add("one_nonzero_n5", c(1, 2, 3, 4, 5), c(1, 2, 3, 4, 9))
add("two_nonzero_n6", c(5, 5, 5, 5, 5, 5), c(5, 5, 5, 5, 6, 7))
add("two_values_opposite_n6", c(0, 0, 0, 0, 0, 0), c(-1, -1, -1, 2, 2, 2))
add("all_abs_tied_n8", c(0, 0, 0, 0, 0, 0, 0, 0), c(3, -3, 3, 3, -3, 3, 3, 3))
add("half_steps_n9", c(1.5, 2, 0.5, 3, 2.5, 1, 2, 0, 1.5), c(0.5, 1, 0.5, 1, 1, 1.5, 0, 0, 0.5))
add("tenths_n12", c(0.7, 0.5, 0.9, 0.3, 0.6, 0.8, 0.4, 0.2, 0.6, 0.9, 0.5, 0.7),
    c(0.8, 0.9, 0.8, 0.7, 0.9, 0.8, 0.9, 0.6, 0.7, 1.0, 0.5, 0.6))
add("eq5d_index_n11", c(0.516, 0.727, 0.285, -0.036, 0.516, 0.62, 0.689, 0.516, 0.159, 0.727, 0.088),
    c(0.796, 0.727, 0.689, 0.516, 0.848, 0.62, 1, 0.796, 0.516, 0.848, 0.516))
add("with_missing_n10", c(40, NA, 38, 60, 44, 30, 50, 46, 36, 58), c(22, 30, NA, 40, 24, 30, 32, NA, 36, 38))
add("sign_flip_symmetric_n8", c(0, 0, 0, 0, 0, 0, 0, 0), c(-4, -2, -1, 0, 0, 1, 2, 4))

## seeded random small samples with ties and zeros, n = 5..12
set.seed(20261204)
kinds <- c("odi", "nrs", "tenths", "halves", "zeros", "eq5d")
eq5d <- c(-0.285, -0.036, 0.088, 0.159, 0.285, 0.516, 0.62, 0.689, 0.727, 0.796, 0.848, 1)
for (i in 1:120) {
  n <- 5 + (i - 1) %% 8
  kind <- kinds[1 + (i - 1) %% length(kinds)]
  if (kind == "odi") { b <- 2 * sample(10:35, n, TRUE); a <- pmax(0, b - 2 * sample(-5:15, n, TRUE)) }
  else if (kind == "nrs") { b <- sample(4:10, n, TRUE); a <- pmax(0, b - sample(-2:6, n, TRUE)) }
  else if (kind == "tenths") { b <- round(runif(n), 1); a <- round(runif(n), 1) }
  else if (kind == "halves") { b <- sample(0:8, n, TRUE) / 2; a <- sample(0:8, n, TRUE) / 2 }
  else if (kind == "zeros") { b <- sample(0:10, n, TRUE); a <- ifelse(runif(n) < 0.5, b, sample(0:10, n, TRUE)) }
  else { b <- sample(eq5d, n, TRUE); a <- sample(eq5d, n, TRUE) }
  add(sprintf("random_%03d_%s_n%d", i, kind, n), b, a)
}

rows <- list()
for (cs in cases) for (level in c(0.95, 0.9, 0.99)) {
  warned <- character()
  w <- withCallingHandlers(
    wilcox.test(cs$after, cs$before, paired = TRUE, exact = FALSE, correct = TRUE,
                conf.int = TRUE, conf.level = level),
    warning = function(cond) { warned <<- c(warned, conditionMessage(cond)); invokeRestart("muffleWarning") })
  rows[[length(rows) + 1]] <- data.frame(
    case = cs$name, conf_level = level, n_pairs = sum(complete.cases(cs$before, cs$after)),
    before = hex(cs$before), after = hex(cs$after),
    statistic = hex1(unname(w$statistic)), p_value = hex1(w$p.value),
    estimate = hex1(unname(w$estimate)), ci_low = hex1(w$conf.int[1]), ci_high = hex1(w$conf.int[2]),
    achieved_conf_level = hex1(attr(w$conf.int, "conf.level")), r_warnings = paste(unique(warned), collapse = " | "),
    estimate_dec = sprintf("%.17g", w$estimate), ci_low_dec = sprintf("%.17g", w$conf.int[1]),
    ci_high_dec = sprintf("%.17g", w$conf.int[2]), p_value_dec = sprintf("%.17g", w$p.value))
}
out <- do.call(rbind, rows)
write.csv(out, "hl_normal_reference.csv", row.names = FALSE)
cat("wrote", nrow(out), "rows with", R.version.string, "\n")
