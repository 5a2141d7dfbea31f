# Reference values for tests/study/test_estimands.py, computed independently of spinereg.
# Input: estimands.csv, one row per patient and time point (status as spinereg's follow-up accounting;
# death_day counted from the operation; value = the EQ-5D index, empty when none).
# Time points at their target days: baseline 0, 3m 90, 1y 365 (the seed study). Run:
#   Rscript tests/study/reference/estimands.R > tests/study/reference/estimands_R.csv
suppressPackageStartupMessages(library(nlme))
d <- read.csv(file.path(dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE))),
                        "estimands.csv"), stringsAsFactors = FALSE, na.strings = "")
target <- c(baseline = 0, "3m" = 90, "1y" = 365)
H <- 365
out <- data.frame(quantity = character(), value = numeric(), stringsAsFactors = FALSE)
add <- function(q, v) out[nrow(out) + 1, ] <<- list(q, v)

# 1. EQ-5D with death = 0: v = score, 0 when died before answering; change = v - baseline; t.test
base <- setNames(d$value[d$timepoint == "baseline"], d$patient_id[d$timepoint == "baseline"])
for (tp in c("3m", "1y")) {
  s <- d[d$timepoint == tp, ]
  v <- ifelse(s$status == "died_before_answering", 0, s$value)
  ch <- v - base[s$patient_id]
  ch <- ch[!is.na(ch)]
  tt <- t.test(ch)
  add(paste0("composite_", tp, "_n"), length(ch))
  add(paste0("composite_", tp, "_mean"), mean(ch))
  add(paste0("composite_", tp, "_ci_low"), tt$conf.int[1])
  add(paste0("composite_", tp, "_ci_high"), tt$conf.int[2])
}

# 2. QALYs to day 365: the curve through (target day, score) before death, 0 from death on (linear to it);
#    integrated exactly over the breakpoints with approx(), and checked with integrate()
qaly <- c()
for (p in unique(d$patient_id)) {
  s <- d[d$patient_id == p, ]
  s <- s[match(names(target), s$timepoint), ]
  dd <- s$death_day[1]
  if (any(s$status == "not_yet_due") || is.na(s$value[1])) next
  x <- c(); y <- c(); ok <- TRUE
  for (i in seq_along(target)) {
    if (!is.na(dd) && target[i] >= dd && i > 1) break
    if (!is.na(s$value[i])) { x <- c(x, target[i]); y <- c(y, s$value[i]) }
    else if (s$status[i] != "died_before_answering") ok <- FALSE
  }
  if (!ok) next
  if (!is.na(dd)) {
    if (dd <= 0) { x <- c(0, 0); y <- c(y[1], 0) } else { keep <- x < dd; x <- c(x[keep], dd); y <- c(y[keep], 0) }
    x <- c(x, max(H, dd) + 1); y <- c(y, 0)
  }
  if (!is.na(dd) && dd <= 0) { a <- 0 } else {
    f <- approxfun(x, y, ties = "ordered")
    br <- sort(unique(c(0, x[x > 0 & x < H], H)))
    u <- f(br)
    a <- sum(diff(br) * (head(u, -1) + tail(u, -1)) / 2)
    chk <- integrate(f, 0, H, subdivisions = 2000L, rel.tol = 1e-12)$value
    stopifnot(abs(a - chk) < 1e-6)
  }
  add(paste0("qaly_", p), a / 365.25)
  qaly <- c(qaly, a / 365.25)
}
tq <- t.test(qaly)
add("qaly_n", length(qaly)); add("qaly_mean", mean(qaly))
add("qaly_ci_low", tq$conf.int[1]); add("qaly_ci_high", tq$conf.int[2])

# 3. Mixed model among the patients alive at each time point (answered or alive without an answer there),
#    on every score of theirs: nlme::lme, REML, the time point's coefficient and its interval
long <- d[!is.na(d$value), ]
long$timepoint <- factor(long$timepoint, levels = names(target))
for (tp in c("3m", "1y")) {
  alive <- d$patient_id[d$timepoint == tp & d$status %in% c("answered", "alive_not_answered")]
  sub <- long[long$patient_id %in% alive, ]
  sub$timepoint <- droplevels(sub$timepoint)
  fit <- lme(value ~ timepoint, random = ~ 1 | patient_id, data = sub, method = "REML")
  term <- paste0("timepoint", tp)
  ci <- intervals(fit, which = "fixed")$fixed
  add(paste0("mixed_", tp, "_n_patients"), length(unique(sub$patient_id)))
  add(paste0("mixed_", tp, "_estimate"), fixef(fit)[[term]])
  add(paste0("mixed_", tp, "_df"), summary(fit)$tTable[term, "DF"])
  add(paste0("mixed_", tp, "_ci_low"), ci[term, "lower"])
  add(paste0("mixed_", tp, "_ci_high"), ci[term, "upper"])
}
write.csv(out, stdout(), row.names = FALSE, quote = FALSE)
