//! Minimal NumPy `.npy` (format 1.0) writer and reader for f32 arrays.
//!
//! Dumps of inputs, kernel outputs and reference outputs are written as `.npy` so a failing
//! `verify` run can be inspected with `numpy.load` without a custom parser. Only what the crate
//! produces is supported: little-endian f32 (`<f4`), C order. The reader exists for round-trip
//! tests and for reloading our own dumps; it accepts format versions 1.0, 2.0 and 3.0 but only
//! `<f4` C-order data.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The six magic bytes every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Header (magic + version + length + dict + padding) is padded to a multiple of this, as
/// NumPy itself does, so the data that follows is aligned for memory mapping.
const HEADER_ALIGN: usize = 64;

/// Bytes before the dict in a version 1.0 header: magic, two version bytes, u16 length.
const PREAMBLE_V1: usize = MAGIC.len() + 2 + 2;

/// Renders a shape as a Python tuple literal: `()`, `(n,)` or `(a, b, c)`.
fn shape_tuple(shape: &[usize]) -> String {
    match shape {
        [] => "()".to_owned(),
        [n] => format!("({n},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", dims.join(", "))
        }
    }
}

/// Builds the complete version 1.0 header (magic through the trailing newline).
fn header_v1(shape: &[usize]) -> io::Result<Vec<u8>> {
    let dict = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}",
        shape_tuple(shape)
    );
    // dict + padding spaces + '\n' brings the total to a multiple of HEADER_ALIGN.
    let unpadded = PREAMBLE_V1 + dict.len() + 1;
    let total = unpadded.div_ceil(HEADER_ALIGN) * HEADER_ALIGN;
    let dict_len = total - PREAMBLE_V1;
    let dict_len_u16 = u16::try_from(dict_len).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("npy header of {dict_len} bytes does not fit format 1.0"),
        )
    })?;

    let mut header = Vec::with_capacity(total);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&[1, 0]);
    header.extend_from_slice(&dict_len_u16.to_le_bytes());
    header.extend_from_slice(dict.as_bytes());
    header.resize(total - 1, b' ');
    header.push(b'\n');
    Ok(header)
}

/// Temp path next to `path` (same directory, hence same filesystem, so `rename` is atomic).
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Writes `data` with the given `shape` as a `.npy` file (format 1.0, `<f4`, C order).
///
/// The file is written to a temporary name in the same directory, synced, then renamed over
/// `path`, so readers never observe a half-written dump even if the process dies mid-write.
/// A zero-length `shape` writes a 0-d array holding exactly one element.
///
/// # Errors
/// `InvalidInput` when the product of `shape` differs from `data.len()` (or overflows), or
/// the header would not fit a 1.0 header; otherwise any I/O error from creating, writing,
/// syncing or renaming the file (the temporary file is removed on failure).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> io::Result<()> {
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "npy shape product overflows")
        })?;
    if count != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "npy shape {shape:?} holds {count} elements but {} were given",
                data.len()
            ),
        ));
    }
    if path.file_name().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("npy path {} has no file name", path.display()),
        ));
    }
    let header = header_v1(shape)?;

    let tmp = temp_path(path);
    let result = (|| {
        let mut w = BufWriter::new(File::create(&tmp)?);
        w.write_all(&header)?;
        for x in data {
            w.write_all(&x.to_le_bytes())?;
        }
        let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Returns the text of `key`'s value in a NumPy header dict, up to the next top-level comma
/// or closing brace (tuples are kept whole).
fn dict_value<'a>(dict: &'a str, key: &str) -> io::Result<&'a str> {
    let pat = format!("'{key}':");
    let start = dict
        .find(&pat)
        .ok_or_else(|| invalid(format!("npy header lacks '{key}'")))?
        + pat.len();
    let rest = dict[start..].trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')
            .map(|i| i + 1)
            .ok_or_else(|| invalid("npy header shape tuple is unterminated"))?
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Ok(rest[..end].trim())
}

/// Reads a `.npy` file written by [`write_f32`] (or by NumPy for a C-order `<f4` array),
/// returning its shape and data.
///
/// # Errors
/// `InvalidData` for a bad magic, unsupported version, a dtype other than `<f4`, Fortran
/// order, a malformed shape, or a data section whose size does not match the shape; any I/O
/// error from reading the file.
pub fn read_f32(path: &Path) -> io::Result<(Vec<usize>, Vec<f32>)> {
    let bytes = fs::read(path)?;
    if bytes.len() < PREAMBLE_V1 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(invalid("not an npy file (bad magic)"));
    }
    let major = bytes[6];
    let (dict_start, dict_len) = match major {
        1 => (10, usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))),
        2 | 3 => {
            let len = bytes
                .get(8..12)
                .ok_or_else(|| invalid("npy header truncated"))?;
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
            (
                12,
                usize::try_from(len).map_err(|_| invalid("npy header too long"))?,
            )
        }
        v => return Err(invalid(format!("unsupported npy version {v}"))),
    };
    let data_start = dict_start + dict_len;
    let dict = bytes
        .get(dict_start..data_start)
        .ok_or_else(|| invalid("npy header truncated"))?;
    let dict = std::str::from_utf8(dict).map_err(|_| invalid("npy header is not text"))?;

    let descr = dict_value(dict, "descr")?;
    if descr != "'<f4'" {
        return Err(invalid(format!("npy dtype {descr} is not '<f4'")));
    }
    let fortran = dict_value(dict, "fortran_order")?;
    if fortran != "False" {
        return Err(invalid(format!(
            "npy fortran_order {fortran} is not supported"
        )));
    }
    let shape_text = dict_value(dict, "shape")?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| invalid(format!("npy shape {shape_text} is not a tuple")))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| invalid(format!("npy shape {shape_text} has a bad dimension")))
        })
        .collect::<io::Result<Vec<usize>>>()?;

    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| invalid("npy shape product overflows"))?;
    let body = &bytes[data_start..];
    if Some(body.len()) != count.checked_mul(4) {
        return Err(invalid(format!(
            "npy data has {} bytes but shape {shape:?} needs {count} f32s",
            body.len()
        )));
    }
    let data = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "pagekv-npy-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn round_trip_3d() {
        let dir = TempDir::new("rt3");
        let path = dir.0.join("a.npy");
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        write_f32(&path, &[2, 3, 4], &data).unwrap();
        let (shape, back) = read_f32(&path).unwrap();
        assert_eq!(shape, vec![2, 3, 4]);
        assert_eq!(back, data);
    }

    #[test]
    fn round_trip_1d_0d_and_empty() {
        let dir = TempDir::new("rt1");
        let p = dir.0.join("one.npy");
        write_f32(&p, &[3], &[1.0, f32::MIN_POSITIVE, -0.0]).unwrap();
        let (shape, back) = read_f32(&p).unwrap();
        assert_eq!(shape, vec![3]);
        assert_eq!(back[1], f32::MIN_POSITIVE);
        assert!(back[2].is_sign_negative());

        let p = dir.0.join("scalar.npy");
        write_f32(&p, &[], &[7.5]).unwrap();
        assert_eq!(read_f32(&p).unwrap(), (vec![], vec![7.5]));

        let p = dir.0.join("empty.npy");
        write_f32(&p, &[0, 4], &[]).unwrap();
        assert_eq!(read_f32(&p).unwrap(), (vec![0, 4], vec![]));
    }

    #[test]
    fn header_length_is_multiple_of_64() {
        for shape in [
            vec![],
            vec![1],
            vec![12345],
            vec![2, 3],
            vec![1, 2, 3, 4, 5, 6, 7, 8],
            vec![usize::MAX; 4],
            // Long enough to need a second 64-byte block.
            vec![1_000_000_000; 6],
        ] {
            let h = header_v1(&shape).unwrap();
            assert_eq!(h.len() % 64, 0, "shape {shape:?}");
            assert_eq!(*h.last().unwrap(), b'\n');
            let dict_len = usize::from(u16::from_le_bytes([h[8], h[9]]));
            assert_eq!(dict_len + 10, h.len());
        }
    }

    #[test]
    fn exact_bytes_for_small_example() {
        let dir = TempDir::new("bytes");
        let path = dir.0.join("small.npy");
        write_f32(&path, &[2], &[1.0, -2.0]).unwrap();
        let bytes = fs::read(&path).unwrap();

        let dict = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
        let mut want = Vec::new();
        want.extend_from_slice(b"\x93NUMPY\x01\x00");
        want.extend_from_slice(&[118, 0]); // 128 - 10 = 118 = 0x76
        want.extend_from_slice(dict);
        want.extend(std::iter::repeat_n(b' ', 128 - 10 - dict.len() - 1));
        want.push(b'\n');
        assert_eq!(want.len(), 128);
        want.extend_from_slice(&[0x00, 0x00, 0x80, 0x3f]); // 1.0f32 LE
        want.extend_from_slice(&[0x00, 0x00, 0x00, 0xc0]); // -2.0f32 LE
        assert_eq!(bytes, want);
    }

    #[test]
    fn multi_dim_shape_text() {
        assert_eq!(shape_tuple(&[]), "()");
        assert_eq!(shape_tuple(&[5]), "(5,)");
        assert_eq!(shape_tuple(&[2, 3, 4]), "(2, 3, 4)");
        let h = header_v1(&[2, 3, 4]).unwrap();
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }"));
        assert_eq!(h.len(), 128);
    }

    #[test]
    fn shape_mismatch_is_invalid_input_and_writes_nothing() {
        let dir = TempDir::new("bad");
        let path = dir.0.join("bad.npy");
        let err = write_f32(&path, &[2, 2], &[1.0; 3]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = write_f32(&path, &[usize::MAX, 2], &[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 0);
    }

    #[test]
    fn overwrite_is_atomic_replace_and_leaves_no_temp() {
        let dir = TempDir::new("over");
        let path = dir.0.join("x.npy");
        write_f32(&path, &[1], &[1.0]).unwrap();
        write_f32(&path, &[2], &[2.0, 3.0]).unwrap();
        assert_eq!(read_f32(&path).unwrap(), (vec![2], vec![2.0, 3.0]));
        let names: Vec<_> = fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("x.npy")]);
    }

    #[test]
    fn write_into_missing_directory_fails_cleanly() {
        let dir = TempDir::new("missing");
        let path = dir.0.join("nope").join("x.npy");
        assert!(write_f32(&path, &[1], &[1.0]).is_err());
    }

    #[test]
    fn reader_rejects_foreign_dtypes_and_truncation() {
        let dir = TempDir::new("reject");
        let path = dir.0.join("f8.npy");
        let mut h = header_v1(&[1]).unwrap();
        let pos = h.windows(3).position(|w| w == b"<f4").unwrap();
        h[pos..pos + 3].copy_from_slice(b"<f8");
        h.extend_from_slice(&[0; 8]);
        fs::write(&path, &h).unwrap();
        assert_eq!(
            read_f32(&path).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );

        let path = dir.0.join("short.npy");
        write_f32(&path, &[4], &[1.0; 4]).unwrap();
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(
            read_f32(&path).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );

        fs::write(&path, b"not numpy").unwrap();
        assert_eq!(
            read_f32(&path).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
