"""Layer 3, the measuring instruments: the judge, distances, the identity encoder, the attribute reader, the audit, set metrics, and their training and calibration (`build`)."""
