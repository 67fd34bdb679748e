//! Reading a model artifact (`model.tar.gz`) never panics and never allocates past its caps, whatever the bytes;
//! what it reads holds only the entries its contract names, and writes back to an archive that reads back the same.
//!
//! The first byte picks the shape of the input: even → the rest is the archive, gzip layer and all; odd → the rest
//! describes tar entries that are packed into a well-formed gzip stream, so the fuzzer reaches the tar headers, the
//! declared sizes, `artifact.json` and the safetensors weights instead of stopping at the gzip header. Each entry is
//! `[name][type][declared size][length: u16][contents]`: a name from the artifact's own (`artifact.json`,
//! `weights.safetensors`, `linear-learner-…`) or fuzzed, a tar entry type, a size header that may lie about the
//! contents that follow (a few bytes off, just past `artifact.json`'s cap, just past the unpacked cap, or the
//! largest a tar header holds), and contents that are raw or, by a flag, a well-formed `artifact.json` or
//! safetensors file around fuzzed fields.
//!
//! The caps: `artifact.json` is read only up to `MAX_META_BYTES` and everything together only up to
//! `MIN_EXPANDED_BYTES` (256 MiB, fuzz inputs being small); `fuzz/run.sh` runs this target with
//! `-malloc_limit_mb=300`, so an allocation sized by a declared length past those caps fails the run.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tern_trainer::artifact::{Artifact, MAX_META_BYTES, MIN_EXPANDED_BYTES};

/// Decisions and bytes taken from the fuzzer's input; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// An `artifact.json` that parses, around a fuzzed algorithm name, feature count and model settings.
fn meta_json(bytes: &mut Bytes) -> Vec<u8> {
    let algorithm = ["linear-learner", "xgboost", "", "a/b", "kmeans"][bytes.byte() as usize % 5];
    let mut artifact = Artifact::new(algorithm, BTreeMap::new(), bytes.byte() as usize);
    artifact.meta.schema_version = [1, 1, 2][bytes.byte() as usize % 3];
    let model = bytes.byte() as usize % 9;
    artifact.meta.model =
        serde_json::Value::String(String::from_utf8_lossy(bytes.take(model)).into_owned());
    serde_json::to_vec(&artifact.meta).expect("metadata serialises")
}

/// A safetensors file: an 8-byte header length (true or not), a JSON header naming one tensor of a fuzzed dtype,
/// shape and offsets, then fuzzed data.
fn safetensors(bytes: &mut Bytes) -> Vec<u8> {
    let dtype = ["F32", "F16", "I64", "U8", "F32"][bytes.byte() as usize % 5];
    let shape: Vec<usize> = (0..bytes.byte() % 4)
        .map(|_| bytes.byte() as usize % 6)
        .collect();
    let length = bytes.byte() as usize;
    let data = bytes.take(length).to_vec();
    let end = match bytes.byte() % 4 {
        0 => usize::MAX,
        1 => data.len() + 4,
        _ => data.len(),
    };
    let header = format!(
        r#"{{"{}":{{"dtype":"{dtype}","shape":{shape:?},"data_offsets":[0,{end}]}}}}"#,
        ["w", "__metadata__", "b"][bytes.byte() as usize % 3]
    );
    let declared = match bytes.byte() % 8 {
        0 => u64::MAX,
        1 => header.len() as u64 + 1,
        _ => header.len() as u64,
    };
    let mut out = declared.to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

/// One raw tar entry: a header whose size field says `declared`, then `contents` padded to 512 bytes.
fn push_entry(tar: &mut Vec<u8>, name: &[u8], entry_type: u8, declared: u64, contents: &[u8]) {
    let mut header = tar::Header::new_gnu();
    let field = &mut header.as_old_mut().name;
    let name = &name[..name.len().min(field.len())];
    field[..name.len()].copy_from_slice(name);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::new(entry_type));
    header.set_size(declared);
    header.set_cksum();
    tar.extend_from_slice(header.as_bytes());
    tar.extend_from_slice(contents);
    tar.resize(tar.len().next_multiple_of(512), 0);
}

/// A gzip'd tar of the entries the input describes (module docs).
fn archive(mut bytes: Bytes) -> Vec<u8> {
    let mut tar = Vec::new();
    while !bytes.0.is_empty() {
        let kind = bytes.byte();
        let name: Vec<u8> = match kind % 8 {
            0 | 1 => b"artifact.json".to_vec(),
            2 | 3 => b"weights.safetensors".to_vec(),
            4 => b"linear-learner-model.json".to_vec(),
            5 => b"./notes.txt".to_vec(),
            _ => {
                let length = bytes.byte() as usize % 24;
                bytes.take(length).to_vec()
            }
        };
        let entry_type = match bytes.byte() % 8 {
            0 => b'5',
            1 => b'2',
            2 => b'L',
            3 => bytes.byte(),
            _ => b'0',
        };
        let lie = bytes.byte();
        let length = usize::from(u16::from_le_bytes([bytes.byte(), bytes.byte()])) % 2048;
        let contents = match (kind & 0x80 != 0, kind % 8) {
            (true, 0 | 1) => meta_json(&mut bytes),
            (true, 2 | 3) => safetensors(&mut bytes),
            _ => bytes.take(length).to_vec(),
        };
        let size = contents.len() as u64;
        let declared = match lie % 16 {
            0 => size + u64::from(lie >> 4),
            1 => size.saturating_sub(u64::from(lie >> 4) + 1),
            2 => MAX_META_BYTES as u64 + 1,
            3 => MIN_EXPANDED_BYTES as u64 + 1,
            4 => 0o77777777777,
            _ => size,
        };
        push_entry(&mut tar, &name, entry_type, declared, &contents);
    }
    tar.extend_from_slice(&[0; 1024]);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, &tar).expect("writing to memory succeeds");
    encoder.finish().expect("writing to memory succeeds")
}

/// Tensors compared by their bits, so NaN weights compare equal to themselves.
fn tensor_bits(artifact: &Artifact) -> Vec<(&String, &Vec<usize>, Vec<u32>)> {
    artifact
        .tensors
        .iter()
        .map(|(name, t)| (name, &t.shape, t.data.iter().map(|v| v.to_bits()).collect()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        archive(Bytes(rest))
    };
    let Ok(artifact) = Artifact::from_bytes(&bytes, "fuzz.tar.gz") else {
        return;
    };
    let prefix = format!("{}-", artifact.meta.algorithm);
    for name in artifact.files.keys() {
        assert!(
            name.starts_with(&prefix),
            "{name:?} is kept though it is not {}'s",
            artifact.meta.algorithm
        );
    }
    // The writer normalises entry paths (`a//b` → `a/b`); after one write the artifact is a fixed point.
    let Ok(written) = artifact.to_bytes() else {
        return;
    };
    let again = Artifact::from_bytes(&written, "again.tar.gz").expect("a written artifact reads");
    assert_eq!(again.meta, artifact.meta);
    assert_eq!(tensor_bits(&again), tensor_bits(&artifact));
    assert!(again.files.len() <= artifact.files.len());
    let third = Artifact::from_bytes(&again.to_bytes().expect("it was written once"), "third")
        .expect("a written artifact reads");
    assert_eq!(third.files, again.files);
});
