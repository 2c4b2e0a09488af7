use std::path::Path;
use std::time::Instant;
use vigil::source::{FfmpegSource, FrameSource};
fn main() {
    let n: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let total: usize = 4000;
    let p = Path::new("/usr/share/doc/opencv-doc/examples/data/vtest.avi");
    let mut srcs: Vec<FfmpegSource> = (0..n).map(|_| FfmpegSource::open_file(p).unwrap()).collect();
    // stagger
    for (i, s) in srcs.iter_mut().enumerate() {
        for _ in 0..(i * 7 % 100) {
            s.next_frame().unwrap();
        }
    }
    let t = Instant::now();
    let mut k = 0;
    while k < total {
        for s in srcs.iter_mut() {
            if s.next_frame().unwrap().is_none() {
                *s = FfmpegSource::open_file(p).unwrap();
            }
            k += 1;
        }
    }
    println!("N {n}: {:.3} ms/frame", t.elapsed().as_secs_f64() * 1000.0 / k as f64);
}
