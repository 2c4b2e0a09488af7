//! Unit tests of `preprocess`.
use super::*;

fn recipe(resize: Resize, interpolation: Interpolation, crop: CropMode, cw: u32, ch: u32) -> Recipe {
    Recipe {
        snippet_frames: 16,
        frame_stride: 1,
        color: ColorOrder::Gray,
        interpolation,
        resize,
        crop,
        crop_width: cw,
        crop_height: ch,
        mean: vec![0.0],
        std: vec![1.0],
    }
}

fn i3d() -> Recipe {
    Recipe {
        snippet_frames: 16,
        frame_stride: 1,
        color: ColorOrder::Rgb,
        interpolation: Interpolation::Bilinear,
        resize: Resize::ShorterSide { size: 256 },
        crop: CropMode::Ten,
        crop_width: 224,
        crop_height: 224,
        mean: vec![114.75],
        std: vec![57.375],
    }
}

/// A frame whose every pixel is gray `values[y * w + x]` (B = G = R).
fn gray_frame(index: u64, w: u32, h: u32, values: &[u8]) -> Frame {
    Frame {
        index,
        pts_ms: index as f64 * 40.0,
        width: w,
        height: h,
        format: PixelFormat::Bgr,
        data: values.iter().flat_map(|&v| [v, v, v]).collect(),
        captured: Instant::now(),
    }
}

fn bgr_frame(index: u64, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Frame {
    let mut data = Vec::new();
    for y in 0..h {
        for x in 0..w {
            data.extend_from_slice(&f(x, y));
        }
    }
    Frame {
        index,
        pts_ms: index as f64 * 40.0,
        width: w,
        height: h,
        format: PixelFormat::Bgr,
        data,
        captured: Instant::now(),
    }
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() < 1e-4, "value {i}: got {g}, want {w} ({got:?})");
    }
}

#[test]
fn bilinear_2x2_to_4x4_matches_half_pixel_centres() {
    // Half-pixel centres: outputs sample source x = -0.25, 0.25, 0.75, 1.25, clamped at the
    // edges, so a row [a, b] becomes [a, .75a+.25b, .25a+.75b, b] (OpenCV INTER_LINEAR).
    let r = recipe(Resize::Exact { width: 4, height: 4 }, Interpolation::Bilinear, CropMode::None, 4, 4);
    let out = Preprocessor::try_new(r).unwrap().prepare(&gray_frame(0, 2, 2, &[0, 4, 8, 12])).unwrap();
    #[rustfmt::skip]
    let want = [
        0.0, 1.0, 3.0, 4.0,
        2.0, 3.0, 5.0, 6.0,
        6.0, 7.0, 9.0, 10.0,
        8.0, 9.0, 11.0, 12.0,
    ];
    assert_close(&out.data, &want);
}

#[test]
fn area_4x4_to_2x2_is_block_mean() {
    let r = recipe(Resize::Exact { width: 2, height: 2 }, Interpolation::Area, CropMode::None, 2, 2);
    let values: Vec<u8> = (0..16).map(|v| v * 10).collect();
    let out = Preprocessor::new(r).prepare(&gray_frame(0, 4, 4, &values)).unwrap();
    // Top-left block: 0, 10, 40, 50 -> 25.
    assert_close(&out.data, &[25.0, 45.0, 105.0, 125.0]);
}

#[test]
fn area_by_a_whole_factor_matches_the_general_path() {
    // 72x48 BGR noise -> 12x8 (6 x 6 blocks), in every colour order.
    let f = bgr_frame(0, 72, 48, |x, y| {
        let v = (x * 7919 + y * 104_729 + x * y * 31) % 251;
        [v as u8, (v * 3 % 256) as u8, (255 - v) as u8]
    });
    for color in [ColorOrder::Gray, ColorOrder::Rgb, ColorOrder::Bgr] {
        let mut r = recipe(Resize::Exact { width: 12, height: 8 }, Interpolation::Area, CropMode::None, 12, 8);
        r.color = color;
        let (n, m, sd) = if color == ColorOrder::Gray {
            (1, vec![3.0], vec![2.0])
        } else {
            (3, vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0])
        };
        r.mean = m;
        r.std = sd;
        let p = Preprocessor::new(r);
        let (mut fast, mut general) = (Scratch::default(), Scratch::default());
        p.block_convert(&f.data, Pixels::Bgr, 72, 48, 12, 8, &mut fast);
        p.separable_convert(&f.data, Pixels::Bgr, 72, 48, 12, 8, &mut general);
        assert_eq!(fast.planes.len(), n * 96);
        for (a, b) in fast.planes.iter().zip(&general.planes) {
            assert!((a - b).abs() < 1e-4, "{color:?}: {a} vs {b}");
        }
        // And `prepare` takes the fast path.
        let out = p.prepare(&f).unwrap();
        assert_eq!(out.data, fast.planes);
    }
}

#[test]
fn area_non_integer_scale_weights_partial_pixels() {
    // 3 -> 2 pixels: each output covers 1.5 source pixels.
    let r = recipe(Resize::Exact { width: 2, height: 1 }, Interpolation::Area, CropMode::None, 2, 1);
    let out = Preprocessor::new(r).prepare(&gray_frame(0, 3, 1, &[0, 30, 90])).unwrap();
    assert_close(&out.data, &[(0.0 + 0.5 * 30.0) / 1.5, (0.5 * 30.0 + 90.0) / 1.5]);
}

#[test]
fn gray_conversion_uses_bt601_weights() {
    let r = recipe(Resize::None, Interpolation::Bilinear, CropMode::None, 2, 1);
    let f = bgr_frame(0, 2, 1, |x, _| if x == 0 { [255, 0, 0] } else { [10, 20, 30] });
    let out = Preprocessor::new(r).prepare(&f).unwrap();
    assert_close(&out.data, &[0.114 * 255.0, 0.299 * 30.0 + 0.587 * 20.0 + 0.114 * 10.0]);
}

#[test]
fn rgb_and_bgr_orders_and_per_channel_normalisation() {
    let mut r = recipe(Resize::None, Interpolation::Bilinear, CropMode::None, 1, 1);
    r.color = ColorOrder::Rgb;
    r.mean = vec![1.0, 2.0, 3.0];
    r.std = vec![1.0, 2.0, 4.0];
    let f = bgr_frame(0, 1, 1, |_, _| [10, 20, 30]);
    assert_close(&Preprocessor::try_new(r.clone()).unwrap().prepare(&f).unwrap().data, &[29.0, 9.0, 1.75]);
    r.color = ColorOrder::Bgr;
    assert_close(&Preprocessor::try_new(r).unwrap().prepare(&f).unwrap().data, &[9.0, 9.0, 6.75]);
}

/// Pixel (x, y) holds B = x, G = y, R = 7, so a crop's values reveal where it came from.
fn coordinate_frame(w: u32, h: u32) -> Frame {
    bgr_frame(0, w, h, |x, y| [x as u8, y as u8, 7])
}

#[test]
fn ten_crop_geometry_and_flip_order() {
    let mut r = recipe(Resize::None, Interpolation::Bilinear, CropMode::Ten, 4, 3);
    r.color = ColorOrder::Bgr;
    // 11x8 frame, 4x3 crops: right = 7, bottom = 5; centre = (round_half_even(3.5) = 4,
    // round_half_even(2.5) = 2), as torchvision's `int(round(...))`.
    let out = Preprocessor::try_new(r).unwrap().prepare(&coordinate_frame(11, 8)).unwrap();
    let crop_len = 3 * 3 * 4;
    assert_eq!(out.data.len(), 10 * crop_len);
    let corner = |k: usize| {
        let crop = &out.data[k * crop_len..(k + 1) * crop_len];
        // B plane first element = x of the top-left output pixel, G plane = y.
        (crop[0] as u32, crop[12] as u32, crop[3] as u32)
    };
    let want = [(0, 0), (7, 0), (0, 5), (7, 5), (4, 2)];
    for (k, (x, y)) in want.iter().enumerate() {
        assert_eq!(corner(k), (*x, *y, x + 3), "crop {k}");
        // Flipped twin: same window, first output pixel is its right-most column.
        assert_eq!(corner(k + 5), (x + 3, *y, *x), "flipped crop {}", k + 5);
    }
    // Every value of the R plane is 7 for every crop.
    for k in 0..10 {
        assert!(out.data[k * crop_len + 24..(k + 1) * crop_len].iter().all(|v| *v == 7.0));
    }
}

#[test]
fn centre_crop_rounds_half_to_even_like_torchvision() {
    // 341 - 224 = 117 -> 58.5 -> 58 (Python round), 256 - 224 = 32 -> 16.
    let p = Preprocessor::new(i3d());
    let w = p.windows(341, 256);
    assert_eq!(w[4], CropWindow { x: 58, y: 16, flip: false });
    assert_eq!(w[9], CropWindow { x: 58, y: 16, flip: true });
}

#[test]
fn shorter_side_truncates_like_torchvision() {
    let r = i3d();
    assert_eq!(r.resized_size(320, 240), (341, 256));
    assert_eq!(r.resized_size(240, 320), (256, 341));
    assert_eq!(r.resized_size(1280, 720), (455, 256));
    assert_eq!(r.resized_size(256, 256), (256, 256));
}

#[test]
fn i3d_recipe_yields_ten_crop_clip_with_expected_values() {
    let r = i3d();
    r.validate().unwrap();
    let p = Preprocessor::new(r.clone());
    let mut asm = SnippetAssembler::new(r);
    let mut snippets = Vec::new();
    for i in 0..16u64 {
        // Uniform colour per frame (B, G, R) = (i, 2i, 3i) + 100: resizing a flat image keeps
        // it flat, so every pixel of crop k, channel c, frame t is checkable by hand.
        let f = bgr_frame(i, 320, 240, |_, _| [100 + i as u8, 100 + 2 * i as u8, 100 + 3 * i as u8]);
        if let Some(s) = asm.push(p.prepare(&f).unwrap()) {
            snippets.push(s);
        }
    }
    assert_eq!(snippets.len(), 1);
    assert!(asm.finish().is_none());
    let s = &snippets[0];
    assert_eq!(s.clip.shape(), &[10, 3, 16, 224, 224]);
    assert_eq!((s.first_frame, s.last_frame, s.real_frames), (0, 15, 16));
    assert_eq!((s.start_ms, s.end_ms), (0.0, 600.0));
    let norm = |v: f32| (v - 114.75) / 57.375;
    for (k, c, t, y, x) in [(0, 0, 0, 0, 0), (3, 1, 7, 100, 200), (9, 2, 15, 223, 223), (5, 0, 9, 5, 6)] {
        let bgr = [100.0 + t as f32, 100.0 + 2.0 * t as f32, 100.0 + 3.0 * t as f32];
        let want = norm(bgr[2 - c]); // RGB order
        let got = s.clip[[k, c, t, y, x]];
        assert!((got - want).abs() < 1e-5, "clip[{k},{c},{t},{y},{x}] = {got}, want {want}");
    }
}

#[test]
fn i3d_recipe_on_a_gradient_keeps_geometry() {
    // R = x of a 256x192 source (resized to 341x256, like 320x240); output column X samples
    // source x = (X + .5) * 256/341 - .5, and bilinear reproduces a linear ramp exactly, so
    // the centre crop's first column (X = 58) is known.
    let p = Preprocessor::new(i3d());
    let f = bgr_frame(0, 256, 192, |x, _| [0, 0, x as u8]);
    let out = p.prepare(&f).unwrap();
    let plane = 224 * 224;
    let crop4_r = &out.data[4 * 3 * plane..4 * 3 * plane + plane];
    let src_x = (58.0 + 0.5) * 256.0 / 341.0 - 0.5;
    assert!((crop4_r[0] * 57.375 + 114.75 - src_x as f32).abs() < 1e-3);
    // Its flipped twin starts with the centre window's right-most column (X = 58 + 223).
    let crop9_r = &out.data[9 * 3 * plane..9 * 3 * plane + plane];
    let src_x = (58.0 + 223.0 + 0.5) * 256.0 / 341.0 - 0.5;
    assert!((crop9_r[0] * 57.375 + 114.75 - src_x as f32).abs() < 1e-3);
}

fn tiny(snippet_frames: usize, stride: usize) -> (Preprocessor, SnippetAssembler) {
    let mut r = recipe(Resize::None, Interpolation::Bilinear, CropMode::None, 1, 1);
    r.snippet_frames = snippet_frames;
    r.frame_stride = stride;
    (Preprocessor::new(r.clone()), SnippetAssembler::new(r))
}

#[test]
fn tail_of_three_frames_is_loop_padded() {
    let (p, mut asm) = tiny(16, 1);
    for i in 0..19u64 {
        let s = asm.push(p.prepare(&gray_frame(i, 1, 1, &[i as u8 * 10])).unwrap());
        assert_eq!(s.is_some(), i == 15);
    }
    let s = asm.finish().unwrap();
    assert_eq!((s.index, s.first_frame, s.last_frame, s.real_frames), (1, 16, 18, 3));
    assert_eq!((s.start_ms, s.end_ms), (640.0, 720.0));
    let got: Vec<f32> = s.clip.iter().copied().collect();
    let want: Vec<f32> = (0..16).map(|t| [160.0, 170.0, 180.0][t % 3]).collect();
    // Gray weights sum to 1 only up to f32 rounding.
    assert_close(&got, &want);
    assert!(asm.finish().is_none());
}

#[test]
fn stride_two_keeps_even_frames() {
    let (p, mut asm) = tiny(3, 2);
    let mut snippets = Vec::new();
    for i in 0..9u64 {
        assert_eq!(asm.keeps(i), i % 2 == 0);
        snippets.extend(asm.push(p.prepare(&gray_frame(i, 1, 1, &[i as u8])).unwrap()));
    }
    snippets.extend(asm.finish());
    assert_eq!(snippets.len(), 2);
    assert_close(&snippets[0].clip.iter().copied().collect::<Vec<_>>(), &[0.0, 2.0, 4.0]);
    assert_eq!((snippets[0].first_frame, snippets[0].last_frame), (0, 4));
    assert_close(&snippets[1].clip.iter().copied().collect::<Vec<_>>(), &[6.0, 8.0, 6.0]);
    assert_eq!(snippets[1].real_frames, 2);
}

#[test]
fn bad_buffers_and_small_frames_are_errors() {
    let p = Preprocessor::new(recipe(Resize::None, Interpolation::Bilinear, CropMode::Center, 4, 4));
    let mut f = gray_frame(3, 2, 2, &[0; 4]);
    assert!(matches!(p.prepare(&f), Err(PreprocessError::TooSmall { index: 3, .. })));
    f.data.pop();
    assert!(matches!(p.prepare(&f), Err(PreprocessError::BadBuffer { index: 3, got: 11, expected: 12, .. })));
    let p = Preprocessor::new(recipe(Resize::None, Interpolation::Bilinear, CropMode::None, 4, 4));
    let f = gray_frame(1, 5, 4, &[0; 20]);
    assert!(matches!(p.prepare(&f), Err(PreprocessError::CropMismatch { .. })));
}

#[test]
fn validate_names_the_key_at_fault() {
    let ok = recipe(Resize::Exact { width: 128, height: 96 }, Interpolation::Area, CropMode::None, 128, 96);
    ok.validate().unwrap();
    i3d().validate().unwrap();
    type Mutation = Box<dyn Fn(&mut Recipe)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (Box::new(|r| r.snippet_frames = 0), "preprocess.snippet_frames"),
        (Box::new(|r| r.frame_stride = 0), "preprocess.frame_stride"),
        (Box::new(|r| r.mean = vec![1.0, 2.0]), "preprocess.mean"),
        (Box::new(|r| r.std = vec![]), "preprocess.std"),
        (Box::new(|r| r.std = vec![0.0]), "preprocess.std"),
        (Box::new(|r| r.mean = vec![f32::NAN]), "preprocess.mean"),
        (Box::new(|r| r.crop_width = 127), "preprocess.crop_width"),
        (Box::new(|r| r.crop_height = 0), "preprocess.crop_height"),
        (Box::new(|r| r.resize = Resize::Exact { width: 0, height: 96 }), "preprocess.resize.width"),
        (Box::new(|r| r.resize = Resize::ShorterSide { size: 96 }), "preprocess.crop"),
        (
            Box::new(|r| {
                r.crop = CropMode::Center;
                r.crop_height = 97;
            }),
            "preprocess.crop_height",
        ),
        (
            Box::new(|r| {
                r.crop = CropMode::Five;
                r.resize = Resize::ShorterSide { size: 100 };
            }),
            "preprocess.crop_width",
        ),
        (Box::new(|r| r.resize = Resize::ShorterSide { size: 0 }), "preprocess.resize.size"),
    ];
    for (mutate, key) in cases {
        let mut r = ok.clone();
        mutate(&mut r);
        let err = r.validate().unwrap_err();
        assert!(err.starts_with(key), "expected an error about {key}, got: {err}");
    }
    let mut rgb = i3d();
    rgb.mean = vec![1.0, 2.0, 3.0];
    rgb.std = vec![1.0, 2.0, 3.0];
    rgb.validate().unwrap();
}

#[test]
fn recipe_serde_form_is_stable() {
    let toml_text = r#"
        snippet_frames = 16
        color = "rgb"
        resize = { mode = "shorter_side", size = 256 }
        crop = "ten"
        crop_width = 224
        crop_height = 224
        mean = [114.75]
        std = [57.375]
    "#;
    let r: Recipe = toml::from_str(toml_text).unwrap();
    assert_eq!(r, i3d());
}

/// A `w` x `h` I420 frame with luma `luma(x, y)` and neutral chroma.
fn i420_frame(w: u32, h: u32, full_range: bool, luma: impl Fn(u32, u32) -> u8) -> Frame {
    let format = PixelFormat::I420 { full_range };
    let mut data = vec![128u8; format.frame_len(w, h)];
    for y in 0..h {
        for x in 0..w {
            data[(y * w + x) as usize] = luma(x, y);
        }
    }
    Frame { index: 0, pts_ms: 0.0, width: w, height: h, format, data, captured: Instant::now() }
}

#[test]
fn i420_luma_gives_the_grey_of_the_equivalent_bgr_frame() {
    // TV-range luma 0, 16, 89, 162, 235, 255 is grey 0, 0, 85, 170, 255, 255 (255 / 219 x
    // (Y - 16), clamped); the block path (24x16 -> 4x4) and the general path (24x16 -> 5x3)
    // must both give what the BGR frame of those greys gives.
    let ys = [0u8, 16, 89, 162, 235, 255];
    let grey = [0u8, 0, 85, 170, 255, 255];
    let pick = |x: u32, y: u32| ((x * 7 + y * 3 + x * y) % 6) as usize;
    let yuv = i420_frame(24, 16, false, |x, y| ys[pick(x, y)]);
    let bgr = bgr_frame(0, 24, 16, |x, y| [grey[pick(x, y)]; 3]);
    for (rw, rh) in [(4, 4), (5, 3)] {
        let r = recipe(Resize::Exact { width: rw, height: rh }, Interpolation::Area, CropMode::None, rw, rh);
        let p = Preprocessor::try_new(r).unwrap();
        let (a, b) = (p.prepare(&yuv).unwrap().data, p.prepare(&bgr).unwrap().data);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-3, "{rw}x{rh}: {a:?} vs {b:?}");
        }
    }
    // Full range: luma is the grey.
    let full = i420_frame(24, 16, true, |x, y| grey[pick(x, y)]);
    let r = recipe(Resize::Exact { width: 4, height: 4 }, Interpolation::Area, CropMode::None, 4, 4);
    let p = Preprocessor::try_new(r).unwrap();
    assert_close(&p.prepare(&full).unwrap().data, &p.prepare(&bgr).unwrap().data);
}

#[test]
fn i420_frames_need_a_grey_model_and_the_right_length() {
    let mut f = i420_frame(320, 240, false, |_, _| 100);
    let err = Preprocessor::try_new(i3d()).unwrap().prepare(&f).unwrap_err().to_string();
    assert!(err.contains("grey model") && err.contains("Rgb"), "{err}");
    f.data.pop();
    let r = recipe(Resize::None, Interpolation::Area, CropMode::None, 320, 240);
    let err = Preprocessor::try_new(r).unwrap().prepare(&f).unwrap_err().to_string();
    assert!(err.contains(&format!("expected {}", 320 * 240 * 3 / 2)), "{err}");
}
