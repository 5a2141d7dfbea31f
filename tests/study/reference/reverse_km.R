# Expected values for spinereg.study._compare.follow_up_time (reverse Kaplan-Meier median follow-up,
# Schemper and Smith 1996) and for the observed-value quartiles of Table 1 (R quantile type 1).
# Run: Rscript tests/study/reference/reverse_km.R > tests/study/reference/reverse_km_R.csv
suppressMessages(library(survival))
# 12 hand-made patients: days from operation to death (dead = 1) or to the extract date (dead = 0)
days <- c(10, 45, 45, 120, 200, 365, 400, 730, 800, 1000, 1200, 1500)
dead <- c(1, 1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0)
months <- days / (365.25 / 12)
fit <- survfit(Surv(months, 1 - dead) ~ 1, conf.type = "log")
q <- quantile(fit, probs = 0.5)
sins <- c(7, 8, 9, 10, 11, 12, 13, 15)
out <- data.frame(
  quantity = c("median_months", "ci_low", "ci_high", "sins_q1_type1", "sins_median_type1", "sins_q3_type1",
               "sins_median_type7", "sins_q1_type7", "sins_q3_type7"),
  value = c(q$quantile, q$lower, q$upper, quantile(sins, c(.25, .5, .75), type = 1),
            quantile(sins, c(.5, .25, .75), type = 7)))
write.csv(out, row.names = FALSE, quote = FALSE)
