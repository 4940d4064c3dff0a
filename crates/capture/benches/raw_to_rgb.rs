//! What a live camera frame costs on the CPU before the detector sees it:
//! each raw layout converted to RGB at 1280x720, by the capture thread's
//! conversion into a reused buffer and by the per-pixel reference
//! (`FrameLayout::to_rgb`) it must match byte for byte.
//! `cargo bench -p edgesort-capture --bench raw_to_rgb`

use std::time::{Duration, Instant};

use edgesort_capture::raw_to_rgb;
use edgesort_types::{FrameLayout, PixelFormat};

const ROUNDS: usize = 60;

fn main() {
    println!("1280x720 frames, {ROUNDS} conversions each, one thread");
    println!(
        "{:<8} {:<22} {:>8} {:>8} {:>8}",
        "format", "conversion", "p50 ms", "p99 ms", "max ms"
    );
    for format in [
        PixelFormat::Yuyv,
        PixelFormat::Nv12,
        PixelFormat::Grey,
        PixelFormat::Bgr24,
    ] {
        let layout = FrameLayout::packed(format, 1280, 720);
        let mut state = 12345u32;
        let bytes: Vec<u8> = (0..layout.byte_len())
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect();
        let mut rgb = Vec::new();
        let rows = time(|| raw_to_rgb(&layout, &bytes, &mut rgb).unwrap());
        assert_eq!(
            rgb,
            layout.to_rgb(&bytes),
            "{format:?} differs from the reference"
        );
        let reference = time(|| {
            std::hint::black_box(layout.to_rgb(&bytes));
        });
        print_row(format, "capture, reused buffer", &rows);
        print_row(format, "per-pixel reference", &reference);
    }
}

fn time(mut convert: impl FnMut()) -> Vec<Duration> {
    for _ in 0..5 {
        convert();
    }
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            convert();
            started.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn print_row(format: PixelFormat, name: &str, times: &[Duration]) {
    let at = |q: f64| times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "{:<8} {:<22} {:>8.3} {:>8.3} {:>8.3}",
        format!("{format:?}"),
        name,
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}
