//! Evaluation: ground truth handling and metrics (frame-level ROC AUC, PR AUC) grow here.
