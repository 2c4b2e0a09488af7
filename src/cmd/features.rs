//! `vigil features`: videos (arguments or a list) in; one `[T, crops, D]` float32 `.npy` per video
//! and a list file of them out, in input order, label columns carried over.

use crate::cli::FeaturesArgs;
use crate::eval::extract::{extract_parallel, ExtractSpec};
use crate::eval::meta::{self, FeatureMeta};
use crate::lists::{read_list, Label, ListEntry, ListError};
use crate::output::OutputError;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

pub fn run(args: &FeaturesArgs) -> anyhow::Result<()> {
    let (entries, list_name) = match &args.list {
        Some(list) => {
            let e = read_list(list, &args.remap)?;
            let name = list.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("features.list"));
            (e, name)
        }
        None => (
            args.videos
                .iter()
                .enumerate()
                .map(|(i, p)| ListEntry { path: p.clone(), line: i + 1, label: None })
                .collect(),
            PathBuf::from("features.list"),
        ),
    };
    let origin = args.list.clone().unwrap_or_else(|| PathBuf::from("<command line>"));
    let located = |e: &ListEntry| format!("{}:{}: video {}", origin.display(), e.line, e.path.display());

    // Check every input before the first minute of decoding.
    let mut stems: HashMap<String, &ListEntry> = HashMap::new();
    let mut outputs = Vec::with_capacity(entries.len());
    for e in &entries {
        let bad = |reason: String| ListError::Line { path: origin.clone(), line: e.line, reason };
        if e.path.extension().is_some_and(|x| x.eq_ignore_ascii_case("npy")) {
            return Err(bad(format!("{} is a feature file; features reads videos", e.path.display())).into());
        }
        if !e.path.is_file() {
            return Err(bad(format!("video {} does not exist", e.path.display())).into());
        }
        let stem = e.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some(prev) = stems.insert(stem.clone(), e) {
            return Err(bad(format!(
                "video {} has the same name as line {} ({}): both would be written to {stem}.npy",
                e.path.display(),
                prev.line,
                prev.path.display()
            ))
            .into());
        }
        outputs.push(args.out.join(format!("{stem}.npy")));
    }
    let out_list = args.out.join(&list_name);
    if let Some(input) = &args.list {
        if same_file(input, &out_list) {
            return Err(ListError::Invalid {
                path: input.clone(),
                reason: format!(
                    "--out {} would overwrite this list with the feature list; choose another directory",
                    args.out.display()
                ),
            }
            .into());
        }
    }

    let mut model = super::load_model(&args.model)?;
    super::apply_provider(&mut model, &args.provider);
    let spec = ExtractSpec::from_model(&model)?;
    // Fail on a broken runtime or model once, before any worker blames a video for it.
    drop(model.load_extractor(1)?);
    std::fs::create_dir_all(&args.out).map_err(|e| OutputError::write(&args.out, e))?;
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let show = !args.no_progress && std::io::stderr().is_terminal();
    let bar = count_bar(show, Some(entries.len() as u64), "features", "videos");
    let videos: Vec<PathBuf> = entries.iter().map(|e| e.path.clone()).collect();
    let model_name = model.manifest.name.clone();
    let mut snippets = 0usize;
    let result = extract_parallel(&videos, jobs, &spec, || model.load_extractor(1), &mut |i, f| {
        let out = &outputs[i];
        let shape = f.features.shape().to_vec();
        let data = f.features.as_standard_layout();
        let slice = data.as_slice().expect("a standard-layout array is contiguous");
        crate::npy::write_f32(out, &shape, slice).map_err(|e| OutputError::write(out, e))?;
        let meta = FeatureMeta {
            source: videos[i].display().to_string(),
            fps: f.info.frame_rate(),
            frames: f.frames,
            snippets: shape[0],
            crops: shape[1],
            dim: shape[2],
            model: model_name.clone(),
        };
        meta::write(out, &meta).map_err(|e| OutputError::write(&meta::sidecar_path(out), e))?;
        snippets += shape[0];
        tracing::debug!(video = %videos[i].display(), frames = f.frames, snippets = shape[0], "features written");
        bar.inc(1);
        Ok(())
    });
    bar.finish_and_clear();
    if let Err((i, e)) = result {
        let what = entries.get(i).map(located).unwrap_or_default();
        return Err(e.context(what));
    }

    let mut text = String::new();
    for (e, out) in entries.iter().zip(&outputs) {
        let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = match e.label {
            Some(Label::Abnormal) => writeln!(text, "{name},1"),
            Some(Label::Normal) => writeln!(text, "{name},0"),
            None => writeln!(text, "{name}"),
        };
    }
    std::fs::write(&out_list, text)
        .map_err(|e| OutputError::write(&out_list, e))
        .with_context(|| "writing the feature list".to_string())?;
    println!(
        "wrote {} feature files ({} snippets, [T, {}, {}] float32, each with a .json of its source and frame rate) and {}",
        outputs.len(),
        snippets,
        spec.crops,
        spec.dim,
        out_list.display()
    );
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// A progress bar counting items (videos), drawn on stderr only when `show`.
pub(crate) fn count_bar(show: bool, len: Option<u64>, msg: &str, unit: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(&format!("{{msg}} [{{bar:40}}] {{pos}}/{{len}} {unit} eta {{eta}}"))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(msg.to_string());
    bar
}
