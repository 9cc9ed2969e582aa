"""The experiment kernel: what every experiment family shares.

- :mod:`.keys`: the one image fingerprint for memo keys, run keys, the model columns of a row;
- :mod:`.selection`: the held-out images every attack uses, subsets of them, batching and
  the studies' step rules;
- :mod:`.rows`: one metric row, whose rates name their denominators;
- :mod:`.evaluation`: the memoised white-box evaluation of one model (sweep, robust accuracy
  of the ensemble, masking diagnostics), read by chapters 2, 5 and 7;
- :mod:`.studies`: the studies' own attack settings and their sweeps;
- :mod:`.records`: typed headline records each family writes and chapter 8 reads.

Families import the core (``advmed.data``, ``.attacks``, ...), this kernel and the shared
experiment modules (``profiles``, ``zoo``, ``references``), never each other
(``tests/test_structure.py``).
"""
from __future__ import annotations

from .evaluation import (ATTACKS, ENSEMBLE, RobustResults, attack_sweep, diagnostics_results, diagnostics_sweep,
                         disease_ids, ensemble_settings, memoised_sweep, robust_results, robust_sweep)
from .keys import NON_TARGETED, ModelKey, RunKey, attack_name, images_key, model_columns, selection_key
from .records import (RECORDS, BlackboxRecord, DefensesRecord, MissingRecord, NaturalRecord, PatchesRecord, Record,
                      UniversalRecord, WhiteboxRecord, ZooRecord, make_record, read_record, write_record)
from .rows import DENOMINATORS, HARM, flip_rate, metric_row, target_rate
from .selection import Subset, batching, study_steps, subset, test_images
from .studies import adversarialmed_eps, adversarialmed_results, finlayson_eps, finlayson_results

__all__ = ["RECORDS", "BlackboxRecord", "DefensesRecord", "MissingRecord", "NaturalRecord", "PatchesRecord",
           "Record", "UniversalRecord", "WhiteboxRecord", "ZooRecord", "make_record", "read_record", "write_record",
           "ATTACKS", "DENOMINATORS", "ENSEMBLE", "HARM", "ModelKey", "NON_TARGETED", "attack_name", "RobustResults",
           "RunKey", "Subset", "adversarialmed_eps", "adversarialmed_results", "attack_sweep", "batching",
           "diagnostics_results", "diagnostics_sweep", "disease_ids", "ensemble_settings", "finlayson_eps", "finlayson_results",
           "flip_rate", "images_key", "memoised_sweep", "metric_row", "model_columns", "robust_results",
           "robust_sweep", "selection_key", "study_steps", "subset", "target_rate", "test_images"]
