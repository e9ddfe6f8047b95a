"""The charging LP solved in lexicographic stages: for now every name lives in
`optimizer.lp_model` (this module re-exports them); the next commit moves the staged solve back
here."""

from optimizer.lp_model import FAIR_PIECES, SlotData, StagedLp, StageOutcome, StepData

__all__ = ["FAIR_PIECES", "SlotData", "StageOutcome", "StagedLp", "StepData"]
