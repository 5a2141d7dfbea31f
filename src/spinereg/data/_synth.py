"""Synthetic national spine registry: a documented generative model, sampled with numpy.

:func:`synthesize` draws a DaneSpine-like registry of ``n_patients`` patients operated
between ``start`` and ``end`` (default 2010-01-01 .. 2020-12-31) and returns a tidy
:class:`~spinereg.data.Extract` flagged ``synthetic``.  Every row is generated from the
model below; no real patient, CPR number or hospital appears, and no summary figure of
any study is written into the data: the figures the model is calibrated to hold in
expectation only.  The default size is **20,000 patients** (``DEFAULT_PATIENTS``), the
size the command line uses; at that size the expected number of patients with a
cancer-related vertebral compression fracture treated with percutaneous vertebroplasty
(PVP) 2013-2017 is about 30, the size of the seed study [K18].  Output is a pure
function of ``(n_patients, seed, start, end, extract_date)`` and ``GENERATOR_VERSION``.

Categorical values are the schema's (``resources/schema.toml``): the model attaches its
weights to named values (``DRAWN``), each looked up in the column's vocabulary when the
tables are built, and every table is conformed strictly; a schema value the model does not
draw is listed, with the reason, in ``NOT_MODELLED``.

The generation is vectorised (no per-patient Python loop): 1,000,000 patients take
about 10 s and 2 GB of memory (``benchmarks/bench_synth.py``).

Model
-----
"Approximately" marks a rounded calibration target; "model choice" marks a value with no
published target (chosen to be plausible, documented so it can be changed).

Patients and indications (one index operation per patient)

================================  =================================================  ==========================
quantity                          distribution (parameters)                          calibrated to [source]
================================  =================================================  ==========================
indication of the index           categorical: disc_herniation .33, stenosis .30,    degenerative conditions
operation                         degenerative .17, traumatic_fracture .04,          approximately 80 % of
                                  osteoporotic_vcf .035, deformity .03, tumour       Danish spine operations,
                                  .012, infection .008, cancer_vcf .0038, other      the rest oncology, deformity,
                                  (remainder .0712)                                  trauma, infection [S14]
cancer_vcf probability .0038      chosen so that E[# cancer_vcf patients with a PVP  30 patients 2013-2017 [K18]
                                  dated 2013-2017] = 30 at 20,000 patients and the
                                  default period (checked by simulation: 30.1)
index operation date              uniform on start .. end (no secular trend)         model choice
age at the index operation        normal, reflected at 18 and clipped to 18..95:     model choice
                                  cancer_vcf 67 +- 10, osteoporotic_vcf 76 +- 8,
                                  traumatic 52 +- 19, degenerative 58 +- 12, disc
                                  46 +- 13, stenosis 68 +- 10, deformity 58 +- 18,
                                  tumour 65 +- 11, infection 65 +- 14, other 57 +- 15
sex                               Bernoulli P(female): osteoporotic .78, traumatic   model choice
                                  .38, degenerative .58, disc .45, stenosis .50,
                                  deformity .68, infection .38, other .50; cancer by
                                  primary site (breast .99, prostate 0, else .35-.70)
birth date                        index date - floor(age * 365.2425 days)            --
================================  =================================================  ==========================

Operations

================================  =================================================  ==========================
procedure category                categorical by indication: cancer_vcf PVP .85 /    model choice; PVP for the
                                  kyphoplasty .15; osteoporotic_vcf PVP .60 / kypho  seed study's subgroup [K18]
                                  .35 / fusion .05; disc: discectomy .95; stenosis:
                                  decompression .80 / fusion .20; degenerative:
                                  fusion .75 / decompression .20; deformity: fusion
                                  .95; traumatic: fusion .80; tumour: decompression
                                  .45 / fusion .55; infection, other: mixed
re-operations                     2nd operation with P .05-.15 by indication (PVP     model choice ("keep it
                                  indications .12), 30 d + exponential delay (mean   simple": at most three
                                  60 d infection, 120 d cancer_vcf .. 900 d          operations per patient)
                                  stenosis and degenerative); 3rd with P
                                  .15 given a 2nd; kept only if <= end and <= death
procedure codes                   SKS-style codes per category (KNAG70 PVP, KNAG72   ILLUSTRATIVE codes in SKS
                                  kyphoplasty, KABC56/KABC60 decompression, KNAG40   form matching the schema
                                  (+KABC56) fusion, KABC16/KABC26 discectomy,        pattern, not an authoritative
                                  KNAW99/KABC99 other)                               code mapping
diagnosis codes                   ICD-10 by indication: cancer_vcf C795 + M485x (x   ICD-10 (WHO); model choice
                                  = 4 thoracic, 5 thoracolumbar, 6 lumbar by the     of the mix
                                  main level) + primary (C509 breast, C349 lung, C61
                                  prostate, C64 kidney, C189, C73, C859, C809; C900
                                  myeloma); tumour C795;G952;primary; osteoporotic
                                  M800 (women) / M808; traumatic S220 / S320;
                                  degenerative M4316 / M513 / M4786; disc M511 /
                                  M501; stenosis M4806 / M4802; deformity M412 /
                                  M415 / M402; infection M462 / M464 / G061; other
                                  M545 / M539 / M961
hospital, department              20 synthetic hospitals SYN-H01..20, Zipf weights   model choice
                                  (exponent .6); PVP/kyphoplasty at SYN-H01..06
ASA class                         ordinal probit: .035 (age - 55) + N(0, 1) + .9     model choice (gives ASA 1-5
                                  cancer + .6 infection, cuts -.6, .9, 2.4, 3.6      about 27/49/22/2/0.1 %)
anaesthesia                       P(local): PVP .60, kyphoplasty .10, others <= .10  model choice
cancer primary site               cancer_vcf and tumour: myeloma .30, breast .20,    myeloma and breast, lung,
                                  lung .15, prostate .10, kidney .06, other .06,     prostate metastases commonest
                                  lymphoma .04, colorectal .04, unknown .03,         (model choice)
                                  thyroid .02
revised Tokuhashi score           primary-site points as in [T05] (breast, prostate, [T05]
                                  thyroid 5; kidney 3; lung 0; unknown 1; myeloma,
                                  lymphoma, colorectal (as colon), other: "others"
                                  2) + four 0/1/2 components from a
                                  latent prognosis g ~ N(0, 1) (each: g + N(0, 1)
                                  vs cuts -1.8, -.35 for cancer_vcf; -.55, .55
                                  tumour) + palsy (none .90 cancer_vcf, .25 tumour)
Tomita score                      site growth (1 slow, 2 moderate, 4 rapid;          [T01]
                                  myeloma, lymphoma moderate) + visceral (0/2/4
                                  from the Tokuhashi component) + bone (1
                                  solitary, 2 multiple)
SINS                              round N(9, 2) cancer_vcf, N(11.5, 2.5) tumour,     score of [F10]; means in its
                                  clipped 0..18                                      "potentially unstable" band
                                                                                     7-12 (model choice)
================================  =================================================  ==========================

Survival

================================  =================================================  ==========================
cancer_vcf and tumour             Weibull, shape .9, median(years) = exp(-3.33 +     median survival about 1 year
                                  .317 Tokuhashi): 0.45 y at score 8, 1.6 y at 12.   for cancer_vcf (simulated
                                  Groups 0-8 / 9-11 / 12-15 have medians of about    0.96 y; tumour 0.4 y); the
                                  0.3 / 0.9 / 2.2 years                              Tokuhashi groups < 6 m, >= 6
                                                                                     m, >= 1 y [T05]
other patients                    Gompertz, hazard .012/y at 65, x exp(.095 per      approximately Danish life
                                  year of age), x 1.25 men / .80 women, x hazard     tables (Statistics Denmark);
                                  ratio osteoporotic 2.0, infection 1.8, traumatic   hazard ratios model choice
                                  1.2, disc .9
death date, source                recorded when <= extract_date; cpr_registry .95,   model choice
                                  medical_record .03, registry .02
================================  =================================================  ==========================

Treated levels and post-operative radiographs (PVP and kyphoplasty)

================================  =================================================  ==========================
main level                        T1..L5 weights peaking at T12/L1 (T10-L3 .68)      model choice; thoracolumbar
                                                                                     junction most common
number of levels                  1-5: cancer_vcf .50/.25/.13/.07/.05,               model choice
                                  osteoporotic .70/.20/.07/.03, else .85/.15;
                                  contiguous around the main level
cement volume per level           lognormal, median 3.6 ml PVP / 4.4 ml kypho,       approximately 2-6 ml
                                  sd(log) .30, x .8 above T10, x 1.15 below L1,
                                  clipped .5..12, 0.1 ml
radiograph                        one X-ray per treated level, day 0 (.4) or 1 (.6)  --
cement leak                       Bernoulli per level: .15 PVP, .09 kyphoplasty      14.8 % of levels in [K18]
leak type (given a leak)          Yeom C .30, S .22, B .18 [Y03]; intradiscal .14,   Yeom classification [Y03];
                                  paravertebral .10, epidural/foraminal .05,         the proportions are model
                                  venous/pulmonary .01                               choices
symptomatic leak                  P .01-.02 (Yeom B/S/C, disc, paravertebral), .15   none symptomatic in [K18];
                                  epidural/foraminal, .30 venous (about 2 % of       most leaks asymptomatic
                                  leaks); becomes a complication (neurological
                                  deficit, cement embolism or other)
================================  =================================================  ==========================

Complications

================================  =================================================  ==========================
per operation                     Bernoulli: PVP, kyphoplasty, discectomy .03,       model choice (low rates)
                                  decompression .05, fusion .10, other .06; x 1.5
                                  for ASA >= 3
type                              open surgery: dural tear .24, infection .14,       model choice
                                  urinary .13, wound .12, other .10, haematoma .08,
                                  neurological .06, pneumonia .06, cardiac .04,
                                  pulmonary embolism .03; PVP/kyphoplasty: new
                                  fracture .50, pneumonia/urinary/other .10 each,
                                  cardiac .08, haematoma .07, infection .05
date                              operation + minimum + exponential delay by type    model choice
                                  (0 d dural tear .. 14 + 150 d new fracture);
                                  dropped when after death or extract_date
Clavien-Dindo grade               I .38, II .36, IIIa .08, IIIb .13, IVa .04, IVb    classification [D04]; the mix
                                  .01 (type-specific for dural tear, infection, new  is assumed (model choice):
                                  fracture, leak complications)                      spine series graded with it,
                                                                                     e.g. [B17], differ in what
                                                                                     they record
grade V                           of deaths <= 30 d after a patient's last           --
                                  operation, .30 are recorded as a fatal
                                  complication dated at death
================================  =================================================  ==========================

Patient-reported outcomes (DaneSpine time points, [H16]: baseline, 3 months, 1 and 2 years)

================================  =================================================  ==========================
questionnaire answered            baseline P .76; follow-up: 10 % of patients never  baseline data for 76 % [D21];
                                  answer one, the rest answer with P chosen for      follow-up non-response
                                  marginal non-response .25 (3m), .30 (1y), .35 (2y) approximately 25-30 % [P20],
                                  among the living; never after death or after       [K23] (12 % in one centre
                                  extract_date; missing at random w.r.t. health      [H16])
answer day                        baseline -floor(Exp(10 d)); 3m 83 + Exp(14 d), 1y  inside the schema windows,
                                  355 + Exp(25 d), 2y 720 + Exp(30 d); outside the   mostly near the target day
                                  window: uniform in it
latent severity                   theta = MU[indication, time point] + u + r + e;    --
                                  u ~ N(0, .55) per patient, r ~ N(0, .45) per
                                  operation (follow-up only), e ~ N(0, .35) per
                                  questionnaire
MU                                solved numerically so that E[ODI] equals, by       DaneSpine mean preoperative
                                  indication (baseline / 3m / 1y / 2y): cancer_vcf   ODI about 43 [D21]; cancer_vcf:
                                  44 / 23.3 / 27 / 27, osteoporotic 52/32/30/30,     ODI 44.1 -> 23.3, EQ-5D gain
                                  traumatic 48/32/24/22, degenerative 45/30/27/27,   .30 at 3 m and .25 at 1 y
                                  disc 46/18/15/15, stenosis 39/24/23/24, deformity  [K18]; others approximately
                                  40/30/26/26, tumour 58/40/38/38, infection         register-typical (model
                                  55/35/28/27, other 40/30/28/28; cancer_vcf 3m and  choice)
                                  1y by the EQ-5D gain
ODI 2.1a sections 0-5             theta + section offset + N(0, .55) vs cuts -1.5,   scoring: Fairbank & Pynsent
                                  -.75, 0, .75, 1.5; one section missing with P .06  2000
                                  (sex life half of them), three with P .015
EQ-5D-3L (all), -5L (operations   latent 1.495 * loading * theta + N(0, sd) + .915,  scale and shift solved so
from 2017-01-01)                  loadings 1, .9, 1, 1, .6, sd .6 (.8 AD); 3L cuts   that the cancer_vcf Danish
                                  MO -.5/2.4, SC .4/2.2, UA -.7/1.3, PD -1.6/.7, AD  3L TTO index [W09] is about
                                  -.1/1.7; 5L cuts c1-.45, c1+.35, (c1+c2)/2+.35,    .40 at baseline and gains .30
                                  c2 (same latent: 3L and 5L answers agree); each    at 3 m
                                  item missing .01 (5L from 2017: model choice, not
                                  DaneSpine's documented switch date)
EQ-VAS                            100 (1 - Phi(.75 theta + .1 + N(0, .45))), half    model choice
                                  rounded to 5; missing .03
NRS back / leg 0-10               10 Phi(.9 theta + offset + N(0, .5)) /             model choice (VCF: back >>
                                  10 Phi(.8 theta + offset + N(0, .6)), offsets by   leg; disc herniation: leg >
                                  indication (back -.2 disc .. +.35 VCF; leg -1.0    back)
                                  VCF .. +.45 disc); missing .02
satisfaction, global assessment   ordinal in the change d of theta since baseline:   model choice
(follow-up only, 1..5)            satisfaction d + .1 + N(0, .55) vs cuts -.8, -.2,
                                  .35, .9; global assessment d + N(0, .45) vs cuts
                                  -.9, -.35, .25, .8; missing .04
================================  =================================================  ==========================

Checked by the tests against the model's own targets (``tests/data/test_synth.py``,
300,000 patients).  Measured on two runs of 1,000,000 patients (seeds 5 and 6), the
cancer_vcf PVP subgroup has a mean paired Danish EQ-5D-3L gain of .29-.30 at 3 months
and .24 at 1 year, a mean ODI of 44 at baseline, 23 at 3 months and 27 at 1 year, a
per-level leak rate of .15 and a median survival of 0.9-1.0 years; about two thirds of
its 1-year questionnaires are missing, most because the patient has died.

References
----------
[K18] Kirkegaard AO, Sørensen ST, Ziegler DS, Carreon L, Andersen MØ, Rousing R.
      Percutaneous vertebroplasty is safe and effective for cancer-related vertebral
      compression fractures. Dan Med J 2018;65(10):A5509.
[Y03] Yeom JS, Kim WJ, Choy WS, Lee CK, Chang BS, Kang JW. Leakage of cement in
      percutaneous transpedicular vertebroplasty for painful osteoporotic compression
      fractures. J Bone Joint Surg Br 2003;85(1):83-89.
[T05] Tokuhashi Y, Matsuzaki H, Oda H, Oshima M, Ryu J. A revised scoring system for
      preoperative evaluation of metastatic spine tumor prognosis. Spine
      2005;30(19):2186-2191.
[T01] Tomita K, Kawahara N, Kobayashi T, et al. Surgical strategy for spinal metastases.
      Spine 2001;26(3):298-306.
[F10] Fisher CG, DiPaola CP, Ryken TC, et al. A novel classification system for spinal
      instability in neoplastic disease. Spine 2010;35(22):E1221-E1229.
[D04] Dindo D, Demartines N, Clavien PA. Classification of surgical complications.
      Ann Surg 2004;240(2):205-213.
[B17] Bellut D, Burkhardt JK, Schultze D, Ginsberg HJ, Regli L, Sarnthein J. Validating
      a therapy-oriented complication grading system in lumbar spine surgery: a
      prospective population-based study. Sci Rep 2017;7:11752.
[H16] Højmark K, Støttrup C, Carreon L, Andersen MO. Patient-reported outcome measures
      unbiased by loss of follow-up. Single-center study based on DaneSpine, the Danish
      spine surgery registry. Eur Spine J 2016;25(1).
[P20] Parai C, Hägg O, Willers C, Lind B, Brisby H. Characteristics and predicted outcome
      of patients lost to follow-up after degenerative lumbar spine surgery. Eur Spine J
      2020;29(12):3063-3073.
[K23] Kaur S, Alhaug OK, Dolatowski FC, Solberg TK, Lønne G. Characteristics and outcomes
      of patients who did not respond to a national spine surgery registry. BMC
      Musculoskelet Disord 2023.
[D21] Doering P, Nielsen L, Høj A, Andersen MØ, Skov ST. DaneSpine, Dansk Rygkirurgisk
      Selskabs PRO-database - resumé af årsrapport 2020. Ugeskr Læger, 7 Dec 2021.
[S14] Simony A, Hansen KH, Ernst C, Andersen MØ. Implementering af den landsdækkende
      database Danespine på Rygkirurgisk Center Middelfart. Ugeskr Læger
      2014;176:V01130019.
[W09] Wittrup-Jensen KU, Lauridsen J, Gudex C, Pedersen KM. Generation of a Danish TTO
      value set for EQ-5D health states. Scand J Public Health 2009;37(5):459-466.
Fairbank JC, Pynsent PB. The Oswestry Disability Index. Spine 2000;25(22):2940-52.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
from scipy.special import ndtr

from spinereg._errors import SpineregError
from spinereg.data._schema import entities, entity, timepoints
from spinereg.data._tidy import Extract, conform

__all__ = ["DEFAULT_PATIENTS", "GENERATOR_VERSION", "synthesize"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

GENERATOR_VERSION = 1
DEFAULT_PATIENTS = 20_000

# --- categorical values the model draws -------------------------------------------------------
# Each tuple names the values of one categorical column in the order the model's weights below
# are written in (indices into it: VP, CVCF, ...).  The values themselves come from the schema:
# when a table is built, each drawn value is looked up by name in the column's vocabulary
# (Column.values of resources/schema.toml) and the column gets the schema's categories, so a
# schema that renames or drops a value the model draws is an error (SpineregError naming the
# value) and a schema that reorders its values changes nothing.  Every schema value is either
# drawn here or listed in NOT_MODELLED, with the reason (tests/data/test_synth.py checks both).
CATEGORIES = ("vertebroplasty", "kyphoplasty", "decompression", "fusion", "discectomy", "other")
VP, KP, DEC, FUS, DISC, OTH = range(6)
INDICATIONS = ("cancer_vcf", "osteoporotic_vcf", "traumatic_fracture", "degenerative", "disc_herniation",
               "stenosis", "deformity", "tumour", "infection", "other")
CVCF, OVCF, TRAUMA, DEGEN, HNP, STEN, DEFORM, TUMOUR, INFECT, OTHER = range(10)
SITES = ("breast", "lung", "prostate", "kidney", "myeloma", "lymphoma", "colorectal", "thyroid", "other",
         "unknown")
LEVELS = ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9",
          "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")
# the model's leak kinds (one draw per leaking level): a Yeom mechanism or a location first seen,
# each then given both a mechanism (LEAK_MECHANISMS) and a location (LEAK_LOCATIONS)
LEAK_TYPES = ("yeom_b", "yeom_s", "yeom_c", "intradiscal", "paravertebral", "epidural_foraminal",
              "venous_pulmonary_embolism")
APPROACHES = ("unipedicular", "bipedicular", "extrapedicular")
# P(approach | vertebroplasty, kyphoplasty): kyphoplasty balloons are mostly placed from both sides
APPROACH_GIVEN_KIND = np.array([[0.45, 0.50, 0.05], [0.15, 0.85, 0.0]])
LEAK_MECHANISMS = ("yeom_b", "yeom_s", "yeom_c")
LEAK_LOCATIONS = ("intradiscal", "paravertebral", "epidural_foraminal", "venous")
# P(mechanism | kind) and P(location | kind): basivertebral leaks go to the epidural venous plexus
# and veins, segmental-vein leaks to paravertebral veins and tissue, cortical defects to the disc,
# paravertebral tissue or canal (Yeom et al. 2003; the split is the model's, not a published one)
LEAK_MECHANISM_GIVEN_KIND = np.array([
    [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0],
    [0.0, 0.0, 1.0], [0.0, 0.4, 0.6], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
LEAK_LOCATION_GIVEN_KIND = np.array([
    [0.0, 0.0, 0.4, 0.6], [0.0, 0.5, 0.0, 0.5], [0.5, 0.35, 0.15, 0.0],
    [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
COMPLICATIONS = ("cement_embolism", "pulmonary_embolism", "neurological_deficit", "new_fracture", "infection",
                 "haematoma", "dural_tear", "wound", "urinary", "cardiac", "pneumonia", "other")
GRADES = ("I", "II", "IIIa", "IIIb", "IVa", "IVb", "V")
TIMEPOINTS = ("baseline", "3m", "1y", "2y")
SEXES = ("female", "male")
DEATH_SOURCES = ("cpr_registry", "medical_record", "registry")
ANAESTHESIA = ("local", "general")
MODALITIES = ("xray",)
MODES = ("web", "paper", "phone", "fhir", "import")
# the categorical column of each tuple above: (entity, column) -> the model's values
DRAWN: dict[tuple[str, str], tuple[str, ...]] = {
    ("patients", "sex"): SEXES,
    ("patients", "death_source"): DEATH_SOURCES,
    ("operations", "procedure_category"): CATEGORIES,
    ("operations", "indication"): INDICATIONS,
    ("operations", "cancer_primary_site"): SITES,
    ("operations", "anaesthesia"): ANAESTHESIA,
    ("treated_levels", "level"): LEVELS,
    ("treated_levels", "approach"): APPROACHES,
    ("proms", "timepoint"): TIMEPOINTS,
    ("complications", "type"): COMPLICATIONS,
    ("complications", "clavien_dindo"): GRADES,
    ("imaging_findings", "level"): LEVELS,
    ("imaging_findings", "modality"): MODALITIES,
    ("imaging_findings", "leak_type"): LEAK_MECHANISMS,
    ("imaging_findings", "leak_location"): LEAK_LOCATIONS,
    ("proms", "mode"): MODES,
}
# schema values the model never draws, and why
_LEVELS_NOT_DRAWN = {lv: "vertebral augmentation is modelled at T1-L5 only" for lv in
                     ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "S1")}
NOT_MODELLED: dict[tuple[str, str], dict[str, str]] = {
    ("patients", "death_source"): {"other": "deaths come from the CPR registry, records or the registry"},
    ("treated_levels", "level"): _LEVELS_NOT_DRAWN,
    ("imaging_findings", "level"): _LEVELS_NOT_DRAWN,
    ("imaging_findings", "modality"): {"ct": "one post-operative X-ray per treated level",
                                       "mri": "one post-operative X-ray per treated level"},
    ("proms", "mode"): dict.fromkeys(MODES, "how a questionnaire reached the registry is not modelled: left empty"),
}

# --- population: indication mix, age, sex, procedure mix, re-operation, mortality -----------
# probability of the index indication (cancer_vcf: calibrated, see the module docstring;
# "other" takes the remainder)
P_INDICATION = np.array([0.0038, 0.035, 0.040, 0.170, 0.330, 0.300, 0.030, 0.012, 0.008, 0.0])
P_INDICATION[OTHER] = 1.0 - P_INDICATION.sum()
AGE_MEAN = np.array([67.0, 76.0, 52.0, 58.0, 46.0, 68.0, 58.0, 65.0, 65.0, 57.0])
AGE_SD = np.array([10.0, 8.0, 19.0, 12.0, 13.0, 10.0, 18.0, 11.0, 14.0, 15.0])
P_FEMALE = np.array([np.nan, 0.78, 0.38, 0.58, 0.45, 0.50, 0.68, np.nan, 0.38, 0.50])
# procedure mix of each indication over CATEGORIES
PROCEDURE_MIX = np.array([
    [0.85, 0.15, 0.00, 0.00, 0.00, 0.00],  # cancer_vcf
    [0.60, 0.35, 0.00, 0.05, 0.00, 0.00],  # osteoporotic_vcf
    [0.00, 0.10, 0.05, 0.80, 0.00, 0.05],  # traumatic_fracture
    [0.00, 0.00, 0.20, 0.75, 0.00, 0.05],  # degenerative
    [0.00, 0.00, 0.05, 0.00, 0.95, 0.00],  # disc_herniation
    [0.00, 0.00, 0.80, 0.20, 0.00, 0.00],  # stenosis
    [0.00, 0.00, 0.00, 0.95, 0.00, 0.05],  # deformity
    [0.00, 0.00, 0.45, 0.55, 0.00, 0.00],  # tumour
    [0.00, 0.00, 0.55, 0.30, 0.00, 0.15],  # infection
    [0.00, 0.00, 0.25, 0.20, 0.00, 0.55],  # other
])
P_REOPERATION = np.array([0.12, 0.12, 0.05, 0.08, 0.08, 0.07, 0.10, 0.05, 0.15, 0.05])
REOP_DELAY_MEAN = np.array([120.0, 240.0, 365.0, 900.0, 400.0, 900.0, 600.0, 120.0, 60.0, 700.0])
P_THIRD = 0.15
MORTALITY_HR = np.array([np.nan, 2.0, 1.2, 1.0, 0.9, 1.0, 1.0, np.nan, 1.8, 1.0])
GOMPERTZ_H65 = 0.012  # annual death hazard at 65 (both sexes), approximately Danish life tables
GOMPERTZ_B = 0.095  # log-hazard slope per year of age
MALE_HR = 1.25
FEMALE_HR = 0.80

# --- cancer: primary site, Tokuhashi components, survival ------------------------------------
SITE_MIX = np.array([0.20, 0.15, 0.10, 0.06, 0.30, 0.04, 0.04, 0.02, 0.06, 0.03])
SITE_FEMALE = np.array([0.99, 0.45, 0.0, 0.35, 0.42, 0.45, 0.45, 0.70, 0.50, 0.50])
# primary-site points of the revised Tokuhashi score (Tokuhashi et al. 2005; sites not listed
# there -- myeloma, lymphoma, colon -- score as "others" = 2; unknown = "unidentified" = 1)
SITE_TOKUHASHI = np.array([5, 0, 5, 3, 2, 2, 2, 5, 2, 1])
# primary-site growth points of the Tomita score (1 slow, 2 moderate, 4 rapid)
SITE_TOMITA = np.array([1, 4, 1, 2, 2, 2, 4, 1, 4, 4])
# cut points of the four 0/1/2 components (general condition, extraspinal bone metastases, vertebral
# metastases, visceral metastases) on g + N(0, 1): cancer_vcf (selected for PVP) / tumour
TOKUHASHI_CUTS = np.array([[-1.8, -0.35], [-0.55, 0.55]])
P_PALSY = np.array([[0.01, 0.09, 0.90],  # cancer_vcf: complete / incomplete / none
                    [0.15, 0.60, 0.25]])  # tumour (cord compression)
# median survival (years) = exp(SURV_A + SURV_B * Tokuhashi score); Weibull shape SURV_K
SURV_A = -3.33
SURV_B = 0.317
SURV_K = 0.9

# --- treated levels, cement, leaks ------------------------------------------------------------
MAIN_LEVEL_WEIGHTS = {"T1": 0.2, "T2": 0.3, "T3": 0.5, "T4": 1.0, "T5": 2.0, "T6": 3.0, "T7": 4.5, "T8": 5.5,
                      "T9": 6.0, "T10": 7.0, "T11": 10.0, "T12": 17.0, "L1": 17.0, "L2": 10.0, "L3": 7.0,
                      "L4": 5.0, "L5": 4.0}
N_LEVELS_MIX = np.array([[0.50, 0.25, 0.13, 0.07, 0.05],  # cancer_vcf
                         [0.70, 0.20, 0.07, 0.03, 0.00],  # osteoporotic_vcf
                         [0.85, 0.15, 0.00, 0.00, 0.00]])  # other indications
CEMENT_MEDIAN = np.array([3.6, 4.4])  # ml, vertebroplasty / kyphoplasty
CEMENT_SDLOG = 0.30
P_LEAK = np.array([0.15, 0.09])  # per level, vertebroplasty / kyphoplasty
LEAK_MIX = np.array([0.18, 0.22, 0.30, 0.14, 0.10, 0.05, 0.01])  # over LEAK_TYPES
P_LEAK_SYMPTOMATIC = np.array([0.01, 0.01, 0.01, 0.01, 0.02, 0.15, 0.30])

# --- complications ----------------------------------------------------------------------------
P_COMPLICATION = np.array([0.03, 0.03, 0.05, 0.10, 0.03, 0.06])  # per operation, by category
ASA3_MULTIPLIER = 1.5
#                            cem  pe   neur frac inf  haem dura wnd  uri  card pneu oth
COMPLICATION_MIX_OPEN = np.array([0, .03, .06, 0, .14, .08, .24, .12, .13, .04, .06, .10])
COMPLICATION_MIX_AUGMENT = np.array([0, 0, 0, .50, .05, .07, 0, 0, .10, .08, .10, .10])
COMPLICATION_DELAY = np.array([0.0, 10.0, 0.5, 150.0, 14.0, 2.0, 0.0, 12.0, 2.0, 3.0, 5.0, 10.0])  # mean days
COMPLICATION_DELAY_MIN = np.array([0, 1, 0, 14, 5, 0, 0, 2, 0, 0, 1, 0])
GRADE_MIX = np.array([0.38, 0.36, 0.08, 0.13, 0.04, 0.01, 0.0])  # non-fatal complications
GRADE_MIX_BY_TYPE = {
    "dural_tear": np.array([0.65, 0.20, 0.0, 0.15, 0.0, 0.0, 0.0]),
    "new_fracture": np.array([0.30, 0.40, 0.0, 0.30, 0.0, 0.0, 0.0]),
    "infection": np.array([0.0, 0.55, 0.0, 0.40, 0.05, 0.0, 0.0]),
    "cement_embolism": np.array([0.0, 0.70, 0.0, 0.0, 0.30, 0.0, 0.0]),
    "neurological_deficit": np.array([0.0, 0.50, 0.0, 0.50, 0.0, 0.0, 0.0]),
}
P_FATAL_COMPLICATION = 0.30  # of deaths within 30 days of an operation
FATAL_MIX = np.array([0, .15, 0, 0, 0, 0, 0, 0, 0, .30, .35, .20])

# --- patient-reported outcomes ----------------------------------------------------------------
# latent severity theta = MU[indication, timepoint] + u_patient + r_operation * (follow-up) + e
MU = np.array([
    # baseline  3m      1y      2y
    [-0.231, -1.120, -0.950, -0.950],  # cancer_vcf (calibrated: ODI 44 / 23.3, EQ-5D gain 0.30 / 0.25)
    [0.078, -0.729, -0.815, -0.815],  # osteoporotic_vcf     ODI 52 / 32 / 30 / 30
    [-0.076, -0.729, -1.087, -1.183],  # traumatic_fracture  ODI 48 / 32 / 24 / 22
    [-0.192, -0.815, -0.948, -0.948],  # degenerative        ODI 45 / 30 / 27 / 27
    [-0.153, -1.390, -1.560, -1.560],  # disc_herniation     ODI 46 / 18 / 15 / 15
    [-0.426, -1.087, -1.135, -1.087],  # stenosis            ODI 39 / 24 / 23 / 24
    [-0.387, -0.815, -0.994, -0.994],  # deformity           ODI 40 / 30 / 26 / 26
    [0.311, -0.398, -0.479, -0.479],  # tumour               ODI 58 / 40 / 38 / 38
    [0.195, -0.602, -0.903, -0.948],  # infection            ODI 55 / 35 / 28 / 27
    [-0.387, -0.815, -0.903, -0.903],  # other               ODI 40 / 30 / 28 / 28
])
SD_PATIENT = 0.55
SD_RESPONSE = 0.45
SD_OCCASION = 0.35
ODI_OFFSETS = np.array([0.15, -0.35, 0.45, 0.0, 0.05, 0.20, -0.25, 0.10, -0.15, -0.20])
ODI_CUTS = np.array([-1.5, -0.75, 0.0, 0.75, 1.5])
ODI_NOISE = 0.55
EQ_LOADING = np.array([1.0, 0.9, 1.0, 1.0, 0.6])  # MO SC UA PD AD
EQ_NOISE = np.array([0.6, 0.6, 0.6, 0.6, 0.8])
EQ_SCALE = 1.495  # calibrated
EQ_SHIFT = -0.915  # calibrated
EQ_CUTS_3L = np.array([[-0.5, 2.4], [0.4, 2.2], [-0.7, 1.3], [-1.6, 0.7], [-0.1, 1.7]])
NRS_BACK_OFFSET = np.array([0.35, 0.35, 0.2, 0.2, -0.2, 0.0, 0.1, 0.2, 0.2, 0.0])
NRS_LEG_OFFSET = np.array([-1.0, -1.0, -0.8, -0.3, 0.45, 0.3, -0.4, -0.2, -0.5, -0.3])
GA_CUTS = np.array([-0.9, -0.35, 0.25, 0.8])
SATISFACTION_CUTS = np.array([-0.8, -0.2, 0.35, 0.9])
# response (questionnaire answered), answer day relative to the operation
P_RESPOND_BASELINE = 0.76
P_DROPOUT = 0.10  # patients who never answer a follow-up questionnaire
P_NONRESPONSE = np.array([0.0, 0.25, 0.30, 0.35])  # marginal, 3m / 1y / 2y, among the living
ANSWER_START = np.array([0, 83, 355, 720])
ANSWER_DELAY_MEAN = np.array([10.0, 14.0, 25.0, 30.0])
EQ5D5L_FROM = "2017-01-01"
P_ITEM_MISSING = 0.01
P_ODI_ONE_MISSING = 0.06
P_ODI_UNSCORABLE = 0.015
P_ODI_SEX_LIFE = 0.5
P_VAS_MISSING = 0.03
P_NRS_MISSING = 0.02
P_TRANSITION_MISSING = 0.04

# --- operations: hospitals, anaesthesia, ASA ---------------------------------------------------
N_HOSPITALS = 20
N_AUGMENT_HOSPITALS = 6
NEURO_HOSPITALS = frozenset({3, 8, 12, 17})
P_LOCAL = np.array([0.60, 0.10, 0.03, 0.0, 0.05, 0.10])
ASA_CUTS = np.array([-0.6, 0.9, 2.4, 3.6])
P_DEATH_SOURCE = np.array([0.95, 0.03, 0.02])  # over DEATH_SOURCES

PROCEDURE_CODES: dict[int, tuple[tuple[str, ...], tuple[float, ...]]] = {
    VP: (("KNAG70",), (1.0,)),
    KP: (("KNAG72",), (1.0,)),
    DEC: (("KABC56", "KABC60"), (0.85, 0.15)),
    FUS: (("KNAG40", "KNAG40;KABC56", "KNAG41;KABC56"), (0.4, 0.4, 0.2)),
    DISC: (("KABC16", "KABC26"), (0.3, 0.7)),
    OTH: (("KNAW99", "KABC99"), (0.6, 0.4)),
}
SITE_ICD10 = ("C509", "C349", "C61", "C64", "C900", "C859", "C189", "C73", "", "C809")
DIAGNOSIS_VARIANTS: dict[int, tuple[tuple[str, ...], tuple[float, ...]]] = {
    DEGEN: (("M4316", "M513", "M4786"), (0.45, 0.35, 0.20)),
    HNP: (("M511", "M501"), (0.88, 0.12)),
    STEN: (("M4806", "M4802"), (0.90, 0.10)),
    DEFORM: (("M412", "M415", "M402"), (0.40, 0.30, 0.30)),
    INFECT: (("M462", "M464", "G061"), (0.30, 0.50, 0.20)),
    OTHER: (("M545", "M539", "M961"), (0.50, 0.30, 0.20)),
}
_T1 = LEVELS.index("T1")
_L1 = LEVELS.index("L1")
_L5 = LEVELS.index("L5")
_T10 = LEVELS.index("T10")


# =============================================================================================
# helpers
# =============================================================================================
def _cum(p: Any) -> FloatArray:
    """Normalised cumulative probabilities; exactly 1 from the last non-zero category on,
    so a category of probability 0 is never drawn (not even by rounding)."""
    a = np.asarray(p, dtype=np.float64)
    c = np.cumsum(a / a.sum())
    c[np.flatnonzero(a > 0)[-1]:] = 1.0
    return c


def _draw(rng: np.random.Generator, p: Any, size: int) -> IntArray:
    """``size`` draws from the categorical distribution ``p``."""
    return np.searchsorted(_cum(p), rng.random(size), side="right").astype(np.int64)


def _draw_rows(rng: np.random.Generator, table: FloatArray, group: IntArray) -> IntArray:
    """One categorical draw per row from ``table[group[row]]`` (loops over groups, not rows)."""
    u = rng.random(len(group))
    out = np.zeros(len(group), dtype=np.int64)
    for g in np.unique(group):
        idx = group == g
        out[idx] = np.searchsorted(_cum(table[g]), u[idx], side="right")
    return out


def _ordinal(x: FloatArray, cuts: FloatArray) -> npt.NDArray[np.int8]:
    """Number of cut points each value exceeds (0 .. len(cuts)), as int8."""
    out = np.zeros(x.shape, dtype=np.int8)
    for c in cuts:
        out += x > c
    return out


def _ids(prefix: str, n: int) -> npt.NDArray[np.object_]:
    """``prefix`` + zero-padded 1..n (width from n), as Python str objects."""
    width = len(str(max(n, 1)))
    length = len(prefix) + width
    buf = np.empty((n, length), dtype=np.uint8)
    buf[:, :len(prefix)] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    nums = np.arange(1, n + 1, dtype=np.int64)
    for k in range(width):
        buf[:, len(prefix) + k] = (nums // 10 ** (width - 1 - k)) % 10 + 48
    offsets = np.arange(0, (n + 1) * length, length, dtype=np.int64)
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf))
    out: npt.NDArray[np.object_] = arr.to_numpy(zero_copy_only=False)
    return out


def _text(values: npt.NDArray[np.object_]) -> Any:
    return pd.array(values, dtype="string")


def _int(values: Any, missing: BoolArray | None = None) -> Any:
    v = np.asarray(values, dtype=np.int64)
    m = np.zeros(len(v), dtype=bool) if missing is None else np.asarray(missing, dtype=bool)
    return pd.arrays.IntegerArray(v, m)


def _bool(values: Any, missing: BoolArray | None = None) -> Any:
    v = np.asarray(values, dtype=bool)
    m = np.zeros(len(v), dtype=bool) if missing is None else np.asarray(missing, dtype=bool)
    return pd.arrays.BooleanArray(v, m)


def _cat(codes: Any, name: str, column: str) -> Any:
    """The model's draws ``codes`` (indices into ``DRAWN[name, column]``, -1 = missing) as a
    Categorical with the schema's vocabulary of ``name.column``, each value found by name."""
    values = DRAWN[name, column]
    vocabulary = entity(name).column(column).values
    unknown = [v for v in values if v not in vocabulary]
    if unknown:
        raise SpineregError(f"the synthetic model draws {', '.join(map(repr, unknown))} for {name}.{column}, "
                            f"which the schema does not have (its values: {', '.join(vocabulary)})")
    # position in the schema of each model value, and -1 (missing) for code -1 (the last entry)
    lookup = np.array([vocabulary.index(v) for v in values] + [-1], dtype=np.int64)
    return pd.Categorical.from_codes(lookup[np.asarray(codes, dtype=np.int64)],
                                     dtype=pd.CategoricalDtype(list(vocabulary)))


def _dates(days: IntArray, missing: BoolArray | None = None) -> npt.NDArray[np.datetime64]:
    out = np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype("datetime64[s]")
    if missing is not None:
        out[missing] = np.datetime64("NaT")
    return out


def _day(iso: str) -> int:
    try:
        return int(np.datetime64(iso, "D").astype(np.int64))
    except ValueError as exc:
        raise SpineregError(f"not an ISO date (YYYY-MM-DD): {iso!r}") from exc


def _strings_by_key(key: IntArray, make: Any) -> npt.NDArray[np.object_]:
    """Strings built once per distinct key (``make(key) -> str``), gathered per row."""
    uniq, inv = np.unique(key, return_inverse=True)
    table = np.empty(len(uniq), dtype=object)
    table[:] = [make(int(k)) for k in uniq]
    out: npt.NDArray[np.object_] = table[inv.reshape(-1)]
    return out


# =============================================================================================
# PROM item models (also used by the calibration check in the tests)
# =============================================================================================
def _odi_items(rng: np.random.Generator, theta: FloatArray) -> npt.NDArray[np.int8]:
    """ODI sections 0..5 from the latent severity: array (10, n), one contiguous row per section."""
    out = np.empty((10, len(theta)), dtype=np.int8)
    for j in range(10):
        out[j] = _ordinal(theta + ODI_OFFSETS[j] + ODI_NOISE * rng.standard_normal(len(theta)), ODI_CUTS)
    return out


def _eq_cuts_5l(cuts3: FloatArray) -> FloatArray:
    """EQ-5D-5L cut points placed around the 3L ones (5L level 5 = 3L level 3)."""
    t1, t2 = float(cuts3[0]), float(cuts3[1])
    return np.array([t1 - 0.45, t1 + 0.35, (t1 + t2) / 2.0 + 0.35, t2])


def _eq_items(rng: np.random.Generator, theta: FloatArray) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
    """EQ-5D-3L and -5L levels (1-based) from the latent severity: two arrays (5, n), MO SC UA PD AD.

    Both versions come from the same latent dimension value, so a respondent's 3L and 5L answers agree.
    """
    lv3 = np.empty((5, len(theta)), dtype=np.int8)
    lv5 = np.empty((5, len(theta)), dtype=np.int8)
    for d in range(5):
        x = EQ_SCALE * EQ_LOADING[d] * theta + EQ_NOISE[d] * rng.standard_normal(len(theta)) - EQ_SHIFT
        lv3[d] = 1 + _ordinal(x, EQ_CUTS_3L[d])
        lv5[d] = 1 + _ordinal(x, _eq_cuts_5l(EQ_CUTS_3L[d]))
    return lv3, lv5


# =============================================================================================
# the generator
# =============================================================================================
def synthesize(n_patients: int, seed: int, *, start: str = "2010-01-01", end: str = "2020-12-31",
               extract_date: str = "2021-06-30") -> Extract:
    """Generate a synthetic DaneSpine-like registry extract.

    Samples the generative model of this module (see the module docstring for every
    distribution, its parameters and what it is calibrated to).  The data are
    synthetic: ``meta["synthetic"]`` is True and no row describes a real person.

    Parameters
    ----------
    n_patients : int
        Number of patients (at least 1).  The default size used by the command line
        is :data:`DEFAULT_PATIENTS` = 20,000, at which the expected number of
        cancer-related vertebral compression fracture patients treated with
        vertebroplasty 2013-2017 is about 30.
    seed : int
        Seed of :func:`numpy.random.default_rng`; the same arguments always give the
        same extract, a different seed a different one.
    start, end : str
        ISO dates: index operations are drawn uniformly between them (re-operations
        up to ``end``).
    extract_date : str
        ISO date of the extract: no date lies after it, deaths after it are not
        recorded and questionnaires not yet answered by then are absent.

    Returns
    -------
    Extract
        Tables ``patients``, ``operations``, ``treated_levels``, ``proms``,
        ``complications`` and ``imaging_findings``, each passed through
        :func:`~spinereg.data.conform`; ``meta`` is ``{"name": "spinereg synthetic
        registry", "synthetic": True, "seed": seed, "n_patients": n_patients,
        "extract_date": extract_date, "source": "spinereg.data.synthesize",
        "generator_version": 1}``.

    Raises
    ------
    SpineregError
        ``n_patients`` below 1, a date that is not ISO 8601, or not
        ``start <= end <= extract_date``.

    Notes
    -----
    Ids are ``SYN`` + zero-padded number for patients (width from ``n_patients``)
    and ``OP``, ``PR``, ``CX``, ``IF`` + number for operations (numbered in date
    order), questionnaires, complications and imaging findings.

    Examples
    --------
    >>> from spinereg.data._synth import synthesize
    >>> x = synthesize(1000, seed=1)
    >>> x.synthetic, x.meta["n_patients"], x["patients"]["patient_id"].iloc[0]
    (True, 1000, 'SYN0001')
    """
    n = int(n_patients)
    if n < 1:
        raise SpineregError(f"n_patients must be at least 1, got {n_patients}")
    d0, d1, dx = _day(start), _day(end), _day(extract_date)
    if not d0 <= d1 <= dx:
        raise SpineregError(f"need start <= end <= extract_date, got {start}, {end}, {extract_date}")
    rng = np.random.default_rng(seed)
    pats = _patients(rng, n, d0, d1)
    ops = _operations(rng, pats, d1)
    levels = _treated_levels(rng, ops)
    imaging = _imaging(rng, ops, levels, pats, dx)
    compl = _complications(rng, ops, pats, imaging, dx)
    proms = _proms(rng, ops, pats, dx)
    pid = _ids("SYN", n)
    oid = _ids("OP", ops["m"])
    built = {"proms": _proms_table(proms, ops, pid, oid)}
    del proms
    built["patients"] = _patients_table(pats, pid, dx)
    built["operations"] = _operations_table(pats, ops, pid, oid)
    built["treated_levels"] = _levels_table(levels, oid)
    built["imaging_findings"] = _imaging_table(imaging, oid)
    built["complications"] = _complications_table(compl, oid)
    tables = {e.name: built[e.name] for e in entities()}
    meta = {"name": "spinereg synthetic registry", "synthetic": True, "seed": seed, "n_patients": n,
            "extract_date": extract_date, "source": "spinereg.data.synthesize",
            "generator_version": GENERATOR_VERSION}
    return Extract(tables, meta)


Arrays = dict[str, Any]


def _patients(rng: np.random.Generator, n: int, d0: int, d1: int) -> Arrays:
    """Indication, sex, age, index-operation day, cancer prognosis and the (true) day of death."""
    ind = _draw(rng, P_INDICATION, n)
    cancer = (ind == CVCF) | (ind == TUMOUR)
    site = np.where(cancer, _draw(rng, SITE_MIX, n), -1)
    p_female = np.where(cancer, SITE_FEMALE[np.maximum(site, 0)], P_FEMALE[ind])
    female = rng.random(n) < p_female
    age = AGE_MEAN[ind] + AGE_SD[ind] * rng.standard_normal(n)
    age = np.clip(np.where(age < 18.0, 36.0 - age, age), 18.0, 95.0)
    day1 = rng.integers(d0, d1 + 1, n, dtype=np.int64)
    birth = day1 - np.floor(age * 365.2425).astype(np.int64)
    # cancer prognosis: revised Tokuhashi components driven by one latent prognosis g
    g = rng.standard_normal(n)
    tumour = (ind == TUMOUR).astype(np.int64)
    comp = np.stack([np.where(tumour == 1, _ordinal(x, TOKUHASHI_CUTS[1]), _ordinal(x, TOKUHASHI_CUTS[0]))
                     for x in (g + rng.standard_normal(n) for _ in range(4))], axis=1)
    palsy = _draw_rows(rng, P_PALSY, tumour)
    toku = SITE_TOKUHASHI[np.maximum(site, 0)] + comp.sum(axis=1) + palsy
    tomita = (SITE_TOMITA[np.maximum(site, 0)] + (4 - 2 * comp[:, 3])
              + np.where((comp[:, 1] == 2) & (comp[:, 2] == 2), 1, 2))
    # survival (years from the index operation)
    median = np.exp(SURV_A + SURV_B * toku)
    scale = median / np.log(2.0) ** (1.0 / SURV_K)
    t_cancer = scale * rng.exponential(1.0, n) ** (1.0 / SURV_K)
    sex_hr = np.where(female, FEMALE_HR, MALE_HR)
    h0 = GOMPERTZ_H65 * np.exp(GOMPERTZ_B * (age - 65.0)) * sex_hr * np.where(cancer, 1.0, MORTALITY_HR[ind])
    t_other = np.log1p(GOMPERTZ_B * rng.exponential(1.0, n) / h0) / GOMPERTZ_B
    years = np.where(cancer, t_cancer, t_other)
    death = day1 + np.floor(np.minimum(years, 150.0) * 365.25).astype(np.int64)
    return {"n": n, "ind": ind, "cancer": cancer, "site": site, "female": female, "birth": birth, "day1": day1,
            "death": death, "death_source": _draw(rng, P_DEATH_SOURCE, n), "tokuhashi": toku, "tomita": tomita}


def _operations(rng: np.random.Generator, pats: Arrays, d1: int) -> Arrays:
    """Index operation plus up to two re-operations per patient; attributes of every operation."""
    n: int = pats["n"]
    ind: IntArray = pats["ind"]
    death: IntArray = pats["death"]
    day1: IntArray = pats["day1"]
    u2, u3 = rng.random(n), rng.random(n)
    day2 = day1 + 30 + np.floor(rng.exponential(REOP_DELAY_MEAN[ind])).astype(np.int64)
    day3 = day2 + 30 + np.floor(rng.exponential(REOP_DELAY_MEAN[ind])).astype(np.int64)
    has2 = (u2 < P_REOPERATION[ind]) & (day2 <= d1) & (day2 <= death)
    has3 = has2 & (u3 < P_THIRD) & (day3 <= d1) & (day3 <= death)
    pat = np.concatenate([np.arange(n), np.flatnonzero(has2), np.flatnonzero(has3)])
    day = np.concatenate([day1, day2[has2], day3[has3]])
    order = np.lexsort((pat, day))
    pat, day = pat[order], day[order]
    m = len(pat)
    o_ind = ind[pat]
    cat = _draw_rows(rng, PROCEDURE_MIX, o_ind)
    augment = (cat == VP) | (cat == KP)
    zipf = 1.0 / np.arange(1, N_HOSPITALS + 1) ** 0.6
    hosp = np.where(augment, rng.integers(0, N_AUGMENT_HOSPITALS, m), _draw(rng, zipf, m))
    # procedure codes
    proc_table = np.zeros((6, 3))
    for c, (_, w) in PROCEDURE_CODES.items():
        proc_table[c, :len(w)] = w
    proc_variant = _draw_rows(rng, proc_table, cat)
    # treated/fractured level (fracture indications) and number of treated levels
    main_cum = np.array(list(MAIN_LEVEL_WEIGHTS.values()))
    main = _T1 + _draw(rng, main_cum, m)
    lv_group = np.where(o_ind == CVCF, 0, np.where(o_ind == OVCF, 1, 2))
    n_levels = np.where(augment, 1 + _draw_rows(rng, N_LEVELS_MIX, lv_group), 0)
    first = np.clip(main - (np.maximum(n_levels, 1) - 1) // 2, _T1, _L5 - (np.maximum(n_levels, 1) - 1))
    region = np.where(main <= _T10, 4, np.where(main <= _L1, 5, 6))
    lumbar = main >= _L1
    # diagnosis codes
    dx_table = np.zeros((10, 3))
    dx_table[:, 0] = 1.0
    for i, (_, w) in DIAGNOSIS_VARIANTS.items():
        dx_table[i] = 0.0
        dx_table[i, :len(w)] = w
    dx_variant = _draw_rows(rng, dx_table, o_ind)
    site = pats["site"][pat]
    female = pats["female"][pat]
    # ASA, anaesthesia, spine-oncology scores
    age = (day - pats["birth"][pat]) / 365.25
    asa_latent = (0.035 * (age - 55.0) + rng.standard_normal(m) + 0.9 * pats["cancer"][pat]
                  + 0.6 * (o_ind == INFECT))
    asa = 1 + _ordinal(asa_latent, ASA_CUTS)
    local = rng.random(m) < P_LOCAL[cat]
    sins = np.clip(np.rint(np.where(o_ind == TUMOUR, 11.5 + 2.5 * rng.standard_normal(m),
                                    9.0 + 2.0 * rng.standard_normal(m))), 0, 18).astype(np.int64)
    return {"m": m, "pat": pat, "day": day, "ind": o_ind, "cat": cat, "augment": augment, "hosp": hosp,
            "proc_variant": proc_variant, "main": main, "n_levels": n_levels, "first": first, "region": region,
            "lumbar": lumbar, "dx_variant": dx_variant, "site": site, "female": female, "asa": asa,
            "local": local, "sins": sins, "cancer": pats["cancer"][pat]}


def _treated_levels(rng: np.random.Generator, ops: Arrays) -> Arrays:
    """One row per treated vertebra of each vertebroplasty/kyphoplasty (contiguous levels)."""
    n_levels: IntArray = ops["n_levels"]
    op = np.repeat(np.arange(ops["m"]), n_levels)
    starts = np.cumsum(n_levels) - n_levels
    offset = np.arange(len(op)) - np.repeat(starts, n_levels)
    level = ops["first"][op] + offset
    kind = np.where(ops["cat"][op] == KP, 1, 0)
    factor = np.where(level <= _T10 - 1, 0.8, np.where(level <= _L1, 1.0, 1.15))
    vol = CEMENT_MEDIAN[kind] * factor * np.exp(CEMENT_SDLOG * rng.standard_normal(len(op)))
    vol = np.round(np.clip(vol, 0.5, 12.0), 1)
    # the needle approach from a generator of its own (the main stream is unchanged)
    approach = _draw_rows(rng.spawn(1)[0], APPROACH_GIVEN_KIND, kind)
    return {"op": op, "level": level, "kind": kind, "volume": vol, "approach": approach}


def _imaging(rng: np.random.Generator, ops: Arrays, levels: Arrays, pats: Arrays, dx: int) -> Arrays:
    """Post-operative radiograph per treated level: cement leak, leak type, symptoms."""
    op: IntArray = levels["op"]
    k = len(op)
    limit = np.minimum(pats["death"][ops["pat"][op]], dx)
    day = np.minimum(ops["day"][op] + (rng.random(k) < 0.6), limit)
    leak = rng.random(k) < P_LEAK[levels["kind"]]
    ltype = np.where(leak, _draw(rng, LEAK_MIX, k), -1)
    symptomatic = leak & (rng.random(k) < P_LEAK_SYMPTOMATIC[np.maximum(ltype, 0)])
    # mechanism and location from a generator of their own: the main stream (and so every other
    # draw of a given seed) is what it was before the two were recorded apart
    side = rng.spawn(1)[0]
    kind = np.maximum(ltype, 0)
    mech = np.where(leak, _draw_rows(side, LEAK_MECHANISM_GIVEN_KIND, kind), -1)
    loc = np.where(leak, _draw_rows(side, LEAK_LOCATION_GIVEN_KIND, kind), -1)
    return {"op": op, "level": levels["level"], "day": day, "leak": leak, "type": ltype,
            "mechanism": mech, "location": loc, "symptomatic": symptomatic}


def _grade_table() -> FloatArray:
    table = np.tile(GRADE_MIX, (len(COMPLICATIONS), 1))
    for name, mix in GRADE_MIX_BY_TYPE.items():
        table[COMPLICATIONS.index(name)] = mix
    return table


def _complications(rng: np.random.Generator, ops: Arrays, pats: Arrays, imaging: Arrays, dx: int) -> Arrays:
    """Peri-operative complications, symptomatic cement leaks and fatal (grade V) complications."""
    m: int = ops["m"]
    death = pats["death"][ops["pat"]]
    # 1. generic complications
    p = P_COMPLICATION[ops["cat"]] * np.where(ops["asa"] >= 3, ASA3_MULTIPLIER, 1.0)
    has = rng.random(m) < p
    ctype = _draw_rows(rng, np.stack([COMPLICATION_MIX_OPEN, COMPLICATION_MIX_AUGMENT]),
                       ops["augment"].astype(np.int64))
    delay = COMPLICATION_DELAY_MIN[ctype] + np.floor(rng.exponential(COMPLICATION_DELAY[ctype])).astype(np.int64)
    cday = ops["day"] + delay
    has &= cday <= np.minimum(death, dx)
    grade = _draw_rows(rng, _grade_table(), ctype)
    sympt = np.where(ctype == COMPLICATIONS.index("dural_tear"), rng.random(m) < 0.4, True)
    g_op = np.flatnonzero(has)
    g_type, g_day, g_grade, g_sym = ctype[has], cday[has], grade[has], sympt[has]
    # 2. symptomatic cement leaks
    s = imaging["symptomatic"]
    l_op = imaging["op"][s]
    lt = imaging["type"][s]
    l_type = np.where(lt == LEAK_TYPES.index("epidural_foraminal"), COMPLICATIONS.index("neurological_deficit"),
                      np.where(lt == LEAK_TYPES.index("venous_pulmonary_embolism"),
                               COMPLICATIONS.index("cement_embolism"), COMPLICATIONS.index("other")))
    l_grade = _draw_rows(rng, _grade_table(), l_type)
    l_day = imaging["day"][s]
    # 3. fatal complications: deaths within 30 days of a patient's last operation
    last = np.ones(m, dtype=bool)
    pat = ops["pat"]
    by_pat = np.lexsort((ops["day"], pat))
    last_sorted = np.ones(m, dtype=bool)
    last_sorted[:-1] = pat[by_pat][1:] != pat[by_pat][:-1]
    last[by_pat] = last_sorted
    early = last & (death - ops["day"] <= 30) & (death <= dx) & (rng.random(m) < P_FATAL_COMPLICATION)
    f_op = np.flatnonzero(early)
    f_type = _draw(rng, FATAL_MIX, m)[early]
    f_day = death[early]
    c_op = np.concatenate([g_op, l_op, f_op])
    c_type = np.concatenate([g_type, l_type, f_type])
    c_day = np.concatenate([g_day, l_day, f_day])
    c_grade = np.concatenate([g_grade, l_grade, np.full(len(f_op), GRADES.index("V"))])
    c_sym = np.concatenate([g_sym, np.ones(len(l_op) + len(f_op), dtype=bool)])
    order = np.lexsort((c_day, c_op))
    return {"op": c_op[order], "type": c_type[order], "day": c_day[order], "grade": c_grade[order],
            "symptomatic": c_sym[order]}


def _answer_offsets(rng: np.random.Generator, t: int, m: int) -> IntArray:
    """Answer day relative to the operation for time point ``t``, inside its schema window."""
    tp = timepoints()[TIMEPOINTS[t]]
    lo, hi = tp.window
    wait = np.floor(rng.exponential(ANSWER_DELAY_MEAN[t], m)).astype(np.int64)
    fallback = rng.integers(lo if t == 0 else tp.target, (tp.target if t == 0 else hi) + 1, m)
    if t == 0:
        off = -wait
        return np.where(off < lo, fallback, off)
    off = ANSWER_START[t] + wait
    return np.where(off > hi, fallback, off)


def _proms(rng: np.random.Generator, ops: Arrays, pats: Arrays, dx: int) -> Arrays:
    """Questionnaires answered at baseline, 3 months, 1 and 2 years, with their item responses.

    Items are returned as ``{column: (int8 values, missing mask)}``, one contiguous array each.
    """
    m: int = ops["m"]
    n: int = pats["n"]
    death = pats["death"][ops["pat"]]
    dropout = (rng.random(n) < P_DROPOUT)[ops["pat"]]
    rows_op, rows_tp, rows_day = [], [], []
    for t in range(len(TIMEPOINTS)):
        u = rng.random(m)
        day = ops["day"] + _answer_offsets(rng, t, m)
        if t == 0:
            keep = u < P_RESPOND_BASELINE
        else:
            keep = ~dropout & (u < (1.0 - P_NONRESPONSE[t]) / (1.0 - P_DROPOUT)) & (day < death)
        keep &= day <= dx
        idx = np.flatnonzero(keep)
        rows_op.append(idx)
        rows_tp.append(np.full(len(idx), t, dtype=np.int64))
        rows_day.append(day[idx])
    r_op = np.concatenate(rows_op)
    r_tp = np.concatenate(rows_tp)
    r_day = np.concatenate(rows_day)
    order = np.argsort(r_op * len(TIMEPOINTS) + r_tp, kind="stable")
    r_op, r_tp, r_day = r_op[order], r_tp[order], r_day[order]
    k = len(r_op)
    # latent severity of each answered questionnaire, and at baseline (for the transition items)
    u_pat = SD_PATIENT * rng.standard_normal(n)
    r_resp = SD_RESPONSE * rng.standard_normal(m)
    eps = SD_OCCASION * rng.standard_normal((len(TIMEPOINTS), m))
    ind = ops["ind"][r_op]
    base = u_pat[ops["pat"][r_op]]
    theta = MU[ind, r_tp] + base + r_resp[r_op] * (r_tp > 0) + eps[r_tp, r_op]
    change = theta - (MU[ind, 0] + base + eps[0, r_op])
    del eps, base
    items: dict[str, tuple[npt.NDArray[np.int8], BoolArray]] = {}
    # EQ-5D-3L always, EQ-5D-5L for operations from EQ5D5L_FROM
    lv3, lv5 = _eq_items(rng, theta)
    no5l = ops["day"][r_op] < _day(EQ5D5L_FROM)
    for d, dim in enumerate(("mo", "sc", "ua", "pd", "ad")):
        items[f"eq5d3l_{dim}"] = (lv3[d], rng.random(k) < P_ITEM_MISSING)
        items[f"eq5d5l_{dim}"] = (np.where(no5l, np.int8(1), lv5[d]), no5l | (rng.random(k) < P_ITEM_MISSING))
    del lv3, lv5, no5l
    vas = 100.0 * (1.0 - ndtr(0.75 * theta + 0.1 + 0.45 * rng.standard_normal(k)))
    vas = np.where(rng.random(k) < 0.5, np.rint(vas / 5.0) * 5.0, np.rint(vas))
    items["eqvas"] = (np.clip(vas, 0, 100).astype(np.int8), rng.random(k) < P_VAS_MISSING)
    del vas
    # ODI: occasionally one section missing (most often sex life), rarely three (unscorable)
    odi = _odi_items(rng, theta)
    v = rng.random(k)
    one = v < P_ODI_ONE_MISSING
    unscorable = (v >= P_ODI_ONE_MISSING) & (v < P_ODI_ONE_MISSING + P_ODI_UNSCORABLE)
    section = np.where(rng.random(k) < P_ODI_SEX_LIFE, 7, rng.integers(0, 10, k))
    odi_missing = np.zeros((10, k), dtype=bool)
    odi_missing[section[one], np.flatnonzero(one)] = True
    n_uns = int(unscorable.sum())
    if n_uns:
        ranks = np.argsort(rng.random((n_uns, 10)), axis=1)[:, :3]
        odi_missing[ranks.reshape(-1), np.repeat(np.flatnonzero(unscorable), 3)] = True
    for j in range(10):
        items[f"odi_{j + 1}"] = (odi[j], odi_missing[j])
    del v, one, unscorable, section
    back = np.rint(10.0 * ndtr(0.9 * theta + NRS_BACK_OFFSET[ind] + 0.5 * rng.standard_normal(k)))
    items["nrs_back"] = (back.astype(np.int8), rng.random(k) < P_NRS_MISSING)
    leg = np.rint(10.0 * ndtr(0.8 * theta + NRS_LEG_OFFSET[ind] + 0.6 * rng.standard_normal(k)))
    items["nrs_leg"] = (leg.astype(np.int8), rng.random(k) < P_NRS_MISSING)
    del back, leg
    # transition items at follow-up, from the change in latent severity since baseline
    baseline = r_tp == 0
    sat = 1 + _ordinal(change + 0.1 + 0.55 * rng.standard_normal(k), SATISFACTION_CUTS)
    items["satisfaction"] = (sat, baseline | (rng.random(k) < P_TRANSITION_MISSING))
    ga = 1 + _ordinal(change + 0.45 * rng.standard_normal(k), GA_CUTS)
    items["global_assessment"] = (ga, baseline | (rng.random(k) < P_TRANSITION_MISSING))
    return {"op": r_op, "tp": r_tp, "day": r_day, "items": items}


def _diagnosis_code(ind: int, variant: int, region: int, lumbar: int, site: int, female: int) -> str:
    """ICD-10 codes (SKS form without the D prefix) of one operation."""
    if ind in (CVCF, TUMOUR):
        lesion = f"M485{region}" if ind == CVCF else "G952"
        if SITES[site] == "myeloma":
            return f"C900;{lesion}"
        return ";".join(c for c in ("C795", lesion, SITE_ICD10[site]) if c)
    if ind == OVCF:
        return "M800" if female else "M808"
    if ind == TRAUMA:
        return "S320" if lumbar else "S220"
    return DIAGNOSIS_VARIANTS[ind][0][variant]


_CHUNK_ROWS = 400_000


def _conformed(columns: dict[str, Any], name: str) -> pd.DataFrame:
    """``conform`` the table built from ``columns``, in row chunks (bounded peak memory); strict,
    so a value outside the schema (a drifted vocabulary, an item out of range) is an error.

    :func:`conform` copies each column a few times; conforming chunks and gluing the
    conformed columns one at a time keeps the peak near the size of the result.
    ``columns`` is emptied.
    """
    raw = pd.DataFrame(columns, copy=False)
    columns.clear()
    where = f"synthetic {name}"
    if len(raw) <= _CHUNK_ROWS:
        return conform(raw, name, strict=True, source=where)
    parts = [conform(raw.iloc[i:i + _CHUNK_ROWS], name, strict=True, source=where)
             for i in range(0, len(raw), _CHUNK_ROWS)]
    del raw
    names = list(parts[0].columns)
    glued: dict[str, pd.Series] = {}
    for c in names:
        glued[c] = pd.concat([p.pop(c) for p in parts], ignore_index=True)
    return pd.DataFrame(glued, copy=False)


def _patients_table(pats: Arrays, pid: npt.NDArray[np.object_], dx: int) -> pd.DataFrame:
    dead = pats["death"] <= dx
    return _conformed({
        "patient_id": _text(pid),
        "sex": _cat(np.where(pats["female"], SEXES.index("female"), SEXES.index("male")), "patients", "sex"),
        "birth_date": _dates(pats["birth"]),
        "death_date": _dates(pats["death"], ~dead),
        "death_source": _cat(np.where(dead, pats["death_source"], -1), "patients", "death_source"),
    }, "patients")


def _operations_table(pats: Arrays, ops: Arrays, pid: npt.NDArray[np.object_],
                      oid: npt.NDArray[np.object_]) -> pd.DataFrame:
    hosp_names = np.array([f"SYN-H{h + 1:02d}" for h in range(N_HOSPITALS)], dtype=object)
    depts = np.array(["Neurosurgery" if h in NEURO_HOSPITALS else "Orthopaedic spine surgery"
                      for h in range(N_HOSPITALS)], dtype=object)
    proc = _strings_by_key(ops["cat"] * 4 + ops["proc_variant"],
                           lambda key: PROCEDURE_CODES[key // 4][0][key % 4])
    site = np.maximum(ops["site"], 0)
    dx_key = (((((ops["ind"] * 3 + ops["dx_variant"]) * 10 + ops["region"]) * 2 + ops["lumbar"]) * 10 + site) * 2
              + ops["female"])

    def dx_make(key: int) -> str:
        key, female = divmod(key, 2)
        key, s = divmod(key, 10)
        key, lumbar = divmod(key, 2)
        key, region = divmod(key, 10)
        i, variant = divmod(key, 3)
        return _diagnosis_code(i, variant, region, lumbar, s, female)

    cancer = ops["cancer"]
    return _conformed({
        "operation_id": _text(oid),
        "patient_id": _text(pid[ops["pat"]]),
        "date": _dates(ops["day"]),
        "hospital": _text(hosp_names[ops["hosp"]]),
        "department": _text(depts[ops["hosp"]]),
        "procedure_codes": _text(proc),
        "procedure_category": _cat(ops["cat"], "operations", "procedure_category"),
        "indication": _cat(ops["ind"], "operations", "indication"),
        "diagnosis_codes": _text(_strings_by_key(dx_key, dx_make)),
        "cancer_primary_site": _cat(np.where(cancer, ops["site"], -1), "operations", "cancer_primary_site"),
        "asa_class": _int(ops["asa"]),
        "anaesthesia": _cat(np.where(ops["local"], ANAESTHESIA.index("local"), ANAESTHESIA.index("general")),
                            "operations", "anaesthesia"),
        "sins": _int(ops["sins"], ~cancer),
        "tokuhashi": _int(pats["tokuhashi"][ops["pat"]], ~cancer),
        "tomita": _int(pats["tomita"][ops["pat"]], ~cancer),
    }, "operations")


def _levels_table(levels: Arrays, oid: npt.NDArray[np.object_]) -> pd.DataFrame:
    return _conformed({
        "operation_id": _text(oid[levels["op"]]),
        "level": _cat(levels["level"], "treated_levels", "level"),
        "cement_volume_ml": levels["volume"],
        "approach": _cat(levels["approach"], "treated_levels", "approach"),
    }, "treated_levels")


def _imaging_table(imaging: Arrays, oid: npt.NDArray[np.object_]) -> pd.DataFrame:
    k = len(imaging["op"])
    return _conformed({
        "finding_id": _text(_ids("IF", k)),
        "operation_id": _text(oid[imaging["op"]]),
        "level": _cat(imaging["level"], "imaging_findings", "level"),
        "modality": _cat(np.full(k, MODALITIES.index("xray"), dtype=np.int64), "imaging_findings", "modality"),
        "date": _dates(imaging["day"]),
        "leak": _bool(imaging["leak"]),
        "leak_type": _cat(imaging["mechanism"], "imaging_findings", "leak_type"),
        "leak_location": _cat(imaging["location"], "imaging_findings", "leak_location"),
        "symptomatic": _bool(imaging["symptomatic"]),
    }, "imaging_findings")


def _complications_table(compl: Arrays, oid: npt.NDArray[np.object_]) -> pd.DataFrame:
    return _conformed({
        "complication_id": _text(_ids("CX", len(compl["op"]))),
        "operation_id": _text(oid[compl["op"]]),
        "date": _dates(compl["day"]),
        "type": _cat(compl["type"], "complications", "type"),
        "clavien_dindo": _cat(compl["grade"], "complications", "clavien_dindo"),
        "symptomatic": _bool(compl["symptomatic"]),
    }, "complications")


def _proms_table(proms: Arrays, ops: Arrays, pid: npt.NDArray[np.object_],
                 oid: npt.NDArray[np.object_]) -> pd.DataFrame:
    """The questionnaires; empties ``proms["items"]`` as it goes."""
    cols: dict[str, Any] = {
        "prom_id": _text(_ids("PR", len(proms["op"]))),
        "patient_id": _text(pid[ops["pat"][proms["op"]]]),
        "operation_id": _text(oid[proms["op"]]),
        "timepoint": _cat(proms["tp"], "proms", "timepoint"),
        "answer_date": _dates(proms["day"]),
    }
    items: dict[str, tuple[npt.NDArray[np.int8], BoolArray]] = proms["items"]
    for name in list(items):
        values, missing = items.pop(name)
        cols[name] = pd.arrays.IntegerArray(values, missing)
    return _conformed(cols, "proms")
