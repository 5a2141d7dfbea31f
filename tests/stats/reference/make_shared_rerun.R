## R's wilcox.test on the shared paired reference inputs *as stored* (15 significant digits).
##
## Run from this folder:   Rscript make_shared_rerun.R /path/to/shared/reference/stats/paired_input.csv
## (the shared folder sits beside the repository: ../shared/reference/stats/paired_input.csv)
## Writes shared_paired_normal_rerun.csv.
##
## Why: shared/reference/stats/paired_expected.csv was computed by R from the unrounded
## simulated inputs, and its CSV keeps 15 significant digits.  The normal-approximation
## Hodges-Lehmann estimate is a root of a step function, so for five data sets (1, 6, 15,
## 18, 21) R itself gives another estimate from the stored digits than from the
## unrounded numbers.  This file holds what R gives from the stored digits, for every
## data set, with the exact doubles R read (sprintf("%a")).
##
## Data set 1 is also rebuilt at full precision: it is the first draw of the simulation,
##   set.seed(20261123); before <- rnorm(5, 44, 15); after <- before - rnorm(5, 18, 14)
## (matches the stored inputs to all 15 digits), written as data set "1_unrounded".
##
## The call for every row:
##   wilcox.test(after, before, paired = TRUE, exact = FALSE, correct = TRUE, conf.int = TRUE)

args <- commandArgs(trailingOnly = TRUE)
path <- if (length(args)) args[1] else "../../../../shared/reference/stats/paired_input.csv"
inp <- read.csv(path)
hex <- function(v) paste(ifelse(is.na(v), "NA", sprintf("%a", v)), collapse = " ")
hex1 <- function(v) if (is.na(v)) "NA" else sprintf("%a", v)
one <- function(name, before, after) {
  w <- suppressWarnings(wilcox.test(after, before, paired = TRUE, exact = FALSE, correct = TRUE, conf.int = TRUE))
  data.frame(dataset = name, before = hex(before), after = hex(after),
             statistic = hex1(unname(w$statistic)), p_value = hex1(w$p.value),
             estimate = hex1(unname(w$estimate)), ci_low = hex1(w$conf.int[1]), ci_high = hex1(w$conf.int[2]),
             estimate_dec = sprintf("%.15g", w$estimate))
}
rows <- lapply(unique(inp$dataset), function(ds) {
  d <- inp[inp$dataset == ds, ]
  one(as.character(ds), d$before, d$after)
})
set.seed(20261123); before <- rnorm(5, 44, 15); after <- before - rnorm(5, 18, 14)
stopifnot(isTRUE(all.equal(before, inp$before[inp$dataset == 1], tolerance = 1e-14)),
          isTRUE(all.equal(after, inp$after[inp$dataset == 1], tolerance = 1e-14)))
rows[[length(rows) + 1]] <- one("1_unrounded", before, after)
write.csv(do.call(rbind, rows), "shared_paired_normal_rerun.csv", row.names = FALSE)
cat("wrote", length(rows), "rows with", R.version.string, "\n")
