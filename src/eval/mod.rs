//! Evaluation: ground truth handling and metrics (frame-level ROC AUC, PR AUC) grow here.
//!
//! - [`metrics`]: ROC / PR curves, ROC AUC, PR AUC and average precision with scikit-learn
//!   parity, plus the snippet-to-frame score expansion of the RTFM protocol.

pub mod metrics;
