"""Names of the 47 clinical features in ICU-Sepsis's ``info["state_vector"]``.

The ``icu-sepsis`` wheel ships the state vectors (k-means cluster centres over MIMIC-III patient
records) without column names. The names and their order come from the package authors' MDP-building
code in the icu-sepsis repository (``icu_sepsis_helpers/mdp_creation/create_rl_table.py``): 4 binary
columns (stored minus 0.5), then 32 z-scored columns, then 11 log-then-z-scored columns, following
the AI Clinician feature set (Komorowski et al. 2018). Values are therefore in standard-deviation
units (binary ones in [-0.5, 0.5]).
"""

from __future__ import annotations

BINARY = ("gender", "mechvent", "max_dose_vaso", "re_admission")
ZSCORED = (
    "age",
    "Weight_kg",
    "GCS",
    "HR",
    "SysBP",
    "MeanBP",
    "DiaBP",
    "RR",
    "Temp_C",
    "FiO2_1",
    "Potassium",
    "Sodium",
    "Chloride",
    "Glucose",
    "Magnesium",
    "Calcium",
    "Hb",
    "WBC_count",
    "Platelets_count",
    "PTT",
    "PT",
    "Arterial_pH",
    "paO2",
    "paCO2",
    "Arterial_BE",
    "HCO3",
    "Arterial_lactate",
    "SOFA",
    "SIRS",
    "Shock_Index",
    "PaO2_FiO2",
    "cumulated_balance",
)
LOG_ZSCORED = (
    "SpO2",
    "BUN",
    "Creatinine",
    "SGOT",
    "SGPT",
    "Total_bili",
    "INR",
    "input_total",
    "input_4hourly",
    "output_total",
    "output_4hourly",
)
FEATURE_NAMES: tuple[str, ...] = BINARY + ZSCORED + LOG_ZSCORED
NUM_FEATURES = len(FEATURE_NAMES)  # 47
