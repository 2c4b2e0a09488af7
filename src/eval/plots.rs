//! Evaluation plots: the ROC curve (`roc.svg`, AUC in the title) and, through
//! [`crate::output::plot_scores`], score against ground truth per video. Writes files only.

use super::metrics::RocCurve;
use crate::output::{font_available, OutputError};
use plotters::prelude::*;
use std::path::Path;

/// Writes the ROC curve as SVG.
pub fn roc_svg(path: &Path, curve: &RocCurve, title: &str) -> Result<(), OutputError> {
    let text = font_available();
    if !text {
        tracing::warn!(path = %path.display(), "no TrueType font found (install fonts-dejavu-core); plot drawn without text");
    }
    let root = SVGBackend::new(path, (640, 600)).into_drawing_area();
    let draw = || -> Result<(), String> {
        let err = |e: DrawingAreaErrorKind<_>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let mut builder = ChartBuilder::on(&root);
        builder.margin(16);
        if text {
            builder.caption(title, ("sans-serif", 18)).x_label_area_size(40).y_label_area_size(48);
        }
        let mut chart = builder.build_cartesian_2d(0f64..1f64, 0f64..1f64).map_err(err)?;
        if text {
            chart.configure_mesh().x_desc("false positive rate").y_desc("true positive rate").draw().map_err(err)?;
        }
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], RGBColor(160, 160, 160).stroke_width(1)))
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                curve.fpr.iter().copied().zip(curve.tpr.iter().copied()),
                RGBColor(30, 90, 200).stroke_width(2),
            ))
            .map_err(err)?;
        root.present().map_err(|e| e.to_string())
    };
    draw().map_err(|e| OutputError::write(path, e))
}
