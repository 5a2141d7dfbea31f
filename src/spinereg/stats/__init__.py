from spinereg.stats._paired import paired_change
__all__ = ["paired_change"]
