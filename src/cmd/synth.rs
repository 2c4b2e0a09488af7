//! `vigil synth`: writes the deterministic synthetic benchmark (see [`crate::synth`]) and prints
//! what it wrote.

use crate::cli::{SynthArgs, SynthSizeArg};
use crate::synth::{generate, SynthOptions, SynthSize};
use std::io::IsTerminal;

pub fn run(args: &SynthArgs) -> anyhow::Result<()> {
    let opts = SynthOptions {
        out: args.out.clone(),
        seed: args.seed,
        size: match args.size {
            SynthSizeArg::Small => SynthSize::Small,
            SynthSizeArg::Full => SynthSize::Full,
        },
        source_video: args.source.clone(),
    };
    let bar = super::features::count_bar(std::io::stderr().is_terminal(), None, "synth", "videos");
    let summary = generate(&opts, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    println!(
        "wrote {} videos to {} (train {}, val {}, test {}; {} abnormal), {} frames, {:.1} MB of video",
        summary.train + summary.val + summary.test,
        summary.out.display(),
        summary.train,
        summary.val,
        summary.test,
        summary.abnormal,
        summary.frames,
        summary.video_bytes as f64 / 1e6
    );
    let kinds: Vec<String> = summary.kinds.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{k} {n}")).collect();
    println!("events: {}", kinds.join(", "));
    println!("lists: train.list val.list test.list (abnormal first); ground truth: gt-test.npy, gt/*.json, labels.csv");
    Ok(())
}
