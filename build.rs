//! Compiles vigil's YUV decoder (`src/source/ffdec.c`) against the system's FFmpeg libraries
//! (Debian: libavformat-dev, libavcodec-dev, libavutil-dev, libswscale-dev).

fn main() {
    println!("cargo:rerun-if-changed=src/source/ffdec.c");
    let mut build = cc::Build::new();
    build.file("src/source/ffdec.c").warnings(true).extra_warnings(true).flag_if_supported("-std=c11");
    for lib in ["libavformat", "libavcodec", "libavutil", "libswscale"] {
        match pkg_config::Config::new().probe(lib) {
            Ok(found) => {
                for dir in found.include_paths {
                    build.include(dir);
                }
            }
            Err(e) => panic!(
                "vigil needs FFmpeg's development files ({lib}): {e}\n\
                 On Debian: apt-get install libavformat-dev libavcodec-dev libavutil-dev libswscale-dev \
                 (scripts/setup.sh installs them)"
            ),
        }
    }
    build.compile("vigil_ffdec");
}
