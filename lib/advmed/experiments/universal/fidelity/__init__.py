"""How faithful the miniature is: weight drift of the fine-tuned models and a resolution
ablation (run / tables / plots / report), shown in chapter 4 and used by chapter 8."""
from . import plots, report, run, tables

__all__ = ["plots", "report", "run", "tables"]
