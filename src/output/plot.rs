//! Score-over-time plots: the score as a step line, alert spans shaded red, ground-truth
//! anomalous spans shaded blue, and the alert thresholds as thin lines. SVG or PNG by extension.
//! PNG text needs a TrueType font; DejaVu Sans (Debian's fonts-dejavu-core) is used when present,
//! otherwise the PNG is drawn without text and a warning says so.

use super::OutputError;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// What one plot shows.
#[derive(Debug, Clone, Default)]
pub struct PlotInput {
    pub title: String,
    /// (start_s, end_s, score) per snippet, in order.
    pub snippets: Vec<(f64, f64, f32)>,
    /// Alert spans (start_s, end_s).
    pub alerts: Vec<(f64, f64)>,
    /// Ground-truth anomalous spans (start_s, end_s), if known.
    pub ground_truth: Vec<(f64, f64)>,
    /// Alert thresholds drawn as lines (on, off).
    pub thresholds: Option<(f32, f32)>,
}

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers a system font for bitmap text once; false when none was found.
pub(crate) fn font_available() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        for p in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// Writes the plot to `path` (`.svg` or `.png`).
pub fn plot_scores(path: &Path, input: &PlotInput) -> Result<(), OutputError> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let size = (1200u32, 400u32);
    let res = match ext.as_deref() {
        Some("svg") => {
            // plotters measures text with the same font machinery for SVG as for bitmaps.
            let text = font_available();
            if !text {
                tracing::warn!(path = %path.display(), "no TrueType font found (install fonts-dejavu-core); plot drawn without text");
            }
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw(&root, input, text).and_then(|_| root.present().map_err(|e| e.to_string()))
        }
        Some("png") => {
            let text = font_available();
            if !text {
                tracing::warn!(path = %path.display(), "no TrueType font found (install fonts-dejavu-core); PNG drawn without text");
            }
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw(&root, input, text).and_then(|_| root.present().map_err(|e| e.to_string()))
        }
        _ => return Err(OutputError::Extension { path: path.to_path_buf(), expected: ".svg or .png" }),
    };
    res.map_err(|e| OutputError::write(path, e))
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, input: &PlotInput, text: bool) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let t_end = input
        .snippets
        .last()
        .map(|s| s.1)
        .into_iter()
        .chain(input.ground_truth.iter().map(|g| g.1))
        .fold(1.0f64, f64::max);
    let mut builder = ChartBuilder::on(root);
    builder.margin(12);
    if text {
        builder.caption(&input.title, ("sans-serif", 18)).x_label_area_size(36).y_label_area_size(48);
    }
    let mut chart = builder.build_cartesian_2d(0f64..t_end, 0f64..1.05f64).map_err(err)?;
    if text {
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("anomaly score")
            .light_line_style(WHITE)
            .draw()
            .map_err(err)?;
    }
    let gt_style = RGBColor(70, 130, 220).mix(0.25).filled();
    chart
        .draw_series(input.ground_truth.iter().map(|&(a, b)| Rectangle::new([(a, 0.0), (b, 1.05)], gt_style)))
        .map_err(err)?;
    let alert_style = RGBColor(230, 60, 50).mix(0.25).filled();
    chart
        .draw_series(input.alerts.iter().map(|&(a, b)| Rectangle::new([(a, 0.0), (b, 1.0)], alert_style)))
        .map_err(err)?;
    if let Some((on, off)) = input.thresholds {
        for (v, c) in [(on as f64, RGBColor(200, 40, 40)), (off as f64, RGBColor(230, 150, 40))] {
            chart.draw_series(LineSeries::new([(0.0, v), (t_end, v)], c.stroke_width(1))).map_err(err)?;
        }
    }
    let steps = input.snippets.iter().flat_map(|&(a, b, s)| [(a, s as f64), (b, s as f64)]);
    chart.draw_series(LineSeries::new(steps, BLACK.stroke_width(2))).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> PlotInput {
        PlotInput {
            title: "clip.avi".into(),
            snippets: (0..10).map(|i| (i as f64, i as f64 + 1.0, (i as f32) / 10.0)).collect(),
            alerts: vec![(6.0, 9.0)],
            ground_truth: vec![(5.5, 10.0)],
            thresholds: Some((0.6, 0.4)),
        }
    }

    #[test]
    fn svg_has_series_and_spans() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.svg");
        plot_scores(&p, &input()).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("clip.avi"), "title drawn (needs fonts-dejavu-core)");
        assert!(svg.contains("polyline"), "score line drawn");
        assert!(svg.matches("<rect").count() >= 3, "background, gt and alert spans");
    }

    #[test]
    fn png_is_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.png");
        plot_scores(&p, &input()).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }

    #[test]
    fn unknown_extension() {
        assert!(matches!(plot_scores(Path::new("p.gif"), &input()), Err(OutputError::Extension { .. })));
    }
}
