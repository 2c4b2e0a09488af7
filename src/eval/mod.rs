//! Evaluation: ground truth handling and metrics (frame-level ROC AUC, PR AUC) grow here.
//!
//! - [`gt`]: the RTFM gt layout checked against a list, per-video slices and spans.
//! - [`ttd`]: alerts over scored snippets, time to detect, false alerts.
//! - [`run`]: one evaluation run (the protocol's numbers plus the per-video table).
//! - [`plots`]: the ROC curve plot (`roc.svg`).
//! - [`extract`]: offline feature extraction of whole videos for `vigil features`.
//! - [`meta`]: the `<stem>.json` sidecar of a feature file (source video, frame rate).
//! - [`metrics`]: ROC / PR curves, ROC AUC, PR AUC and average precision with scikit-learn
//!   parity, plus the snippet-to-frame score expansion of the RTFM protocol.

pub mod extract;
pub mod gt;
pub mod meta;
pub mod metrics;
pub mod plots;
pub mod run;
pub mod ttd;
