//! A package as one file: a tar archive (POSIX ustar, GNU long names, pax headers skipped) holding `manifest.json`
//! and `model.onnx`, at its top level or inside one folder — what `tar -cf model.tar -C package .` writes.

use tern_runtime::package::{GRAPH_FILE, MANIFEST_FILE};

use crate::WasmError;

const BLOCK: usize = 512;

/// The two files of a package, read from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFiles {
    pub manifest: Vec<u8>,
    pub graph: Vec<u8>,
}

/// Reads `manifest.json` and `model.onnx` out of the tar archive `bytes`; `source` names the archive in errors.
///
/// Errors ([`WasmError::Archive`]): a header whose checksum or size field is invalid, an entry running past the end
/// of the archive, or either file missing.
pub fn read_package(bytes: &[u8], source: &str) -> Result<PackageFiles, WasmError> {
    let error = |offset: usize, message: String| WasmError::Archive {
        source_name: source.to_string(),
        offset,
        message,
    };
    let mut manifest = None;
    let mut graph = None;
    let mut long_name: Option<String> = None;
    let mut offset = 0;
    while offset + BLOCK <= bytes.len() {
        let header = &bytes[offset..offset + BLOCK];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        check_checksum(header).map_err(|message| error(offset, message))?;
        let size = parse_octal(&header[124..136])
            .ok_or_else(|| error(offset, "the size field is not an octal number".to_string()))?;
        let data_start = offset + BLOCK;
        let data_end = data_start
            .checked_add(size)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| {
                error(
                    offset,
                    format!(
                        "the entry declares {size} bytes but the archive ends {} bytes later",
                        bytes.len() - data_start
                    ),
                )
            })?;
        let data = &bytes[data_start..data_end];
        match header[156] {
            b'L' => long_name = Some(c_string(data)),
            b'0' | 0 => {
                let name = long_name.take().unwrap_or_else(|| header_name(header));
                match base_name(&name) {
                    Some(MANIFEST_FILE) => manifest = Some(data.to_vec()),
                    Some(GRAPH_FILE) => graph = Some(data.to_vec()),
                    _ => {}
                }
            }
            // Folders, links, pax headers ('x', 'g') and other entries carry nothing a package needs.
            _ => long_name = None,
        }
        offset = data_start + size.div_ceil(BLOCK) * BLOCK;
    }
    let missing = |name: &str| {
        error(
            bytes.len(),
            format!("the archive has no {name} (expected {MANIFEST_FILE} and {GRAPH_FILE})"),
        )
    };
    Ok(PackageFiles {
        manifest: manifest.ok_or_else(|| missing(MANIFEST_FILE))?,
        graph: graph.ok_or_else(|| missing(GRAPH_FILE))?,
    })
}

/// The file name of an entry at the top level or one folder down (`./model.onnx`, `package/model.onnx`).
fn base_name(path: &str) -> Option<&str> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    match parts.as_slice() {
        [name] | [_, name] => Some(name),
        _ => None,
    }
}

fn header_name(header: &[u8]) -> String {
    let name = c_string(&header[0..100]);
    let prefix = if &header[257..262] == b"ustar" {
        c_string(&header[345..500])
    } else {
        String::new()
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn parse_octal(field: &[u8]) -> Option<usize> {
    let text = c_string(field);
    let text = text.trim_matches(|c: char| c == ' ' || c == '\0');
    if text.is_empty() {
        return Some(0);
    }
    usize::from_str_radix(text, 8).ok()
}

/// The header checksum: the byte sum with the checksum field read as spaces.
fn check_checksum(header: &[u8]) -> Result<(), String> {
    let stored = parse_octal(&header[148..156])
        .ok_or_else(|| "the checksum field is not an octal number".to_string())?;
    let sum: usize = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                b' ' as usize
            } else {
                b as usize
            }
        })
        .sum();
    if sum == stored {
        Ok(())
    } else {
        Err(format!(
            "header checksum {stored} does not match its bytes ({sum}): not a tar archive, or a damaged one"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One ustar entry: header (name, octal size, checksum) and data padded to whole blocks.
    fn entry(name: &str, typeflag: u8, data: &[u8]) -> Vec<u8> {
        let mut header = vec![0u8; BLOCK];
        header[..name.len()].copy_from_slice(name.as_bytes());
        header[100..107].copy_from_slice(b"0000644");
        header[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        header[156] = typeflag;
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].copy_from_slice(b"        ");
        let sum: usize = header.iter().map(|&b| b as usize).sum();
        header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let mut out = header;
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        out
    }

    fn archive(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out: Vec<u8> = entries.concat();
        out.extend_from_slice(&[0u8; 2 * BLOCK]);
        out
    }

    #[test]
    fn reads_both_files_at_top_level_and_in_a_folder() {
        let graph = vec![7u8; 700];
        for folder in ["", "./", "package/"] {
            let bytes = archive(&[
                entry(&format!("{folder}manifest.json"), b'0', b"{}"),
                entry("package/", b'5', b""),
                entry(&format!("{folder}model.onnx"), b'0', &graph),
            ]);
            let files = read_package(&bytes, "pkg.tar").unwrap();
            assert_eq!(files.manifest, b"{}");
            assert_eq!(files.graph, graph);
        }
    }

    #[test]
    fn gnu_long_names_name_the_next_entry() {
        let long = format!("{}/model.onnx", "d".repeat(120));
        let bytes = archive(&[
            entry("manifest.json", b'0', b"{}"),
            entry("././@LongLink", b'L', format!("{long}\0").as_bytes()),
            entry("truncated", b'0', b"graph"),
        ]);
        assert_eq!(read_package(&bytes, "pkg.tar").unwrap().graph, b"graph");
    }

    #[test]
    fn refuses_a_missing_file_a_bad_checksum_and_truncation() {
        let only_manifest = archive(&[entry("manifest.json", b'0', b"{}")]);
        let message = read_package(&only_manifest, "pkg.tar")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("pkg.tar") && message.contains("no model.onnx"),
            "{message}"
        );

        let mut damaged = archive(&[entry("model.onnx", b'0', b"x")]);
        damaged[0] = b'M';
        let message = read_package(&damaged, "pkg.tar").unwrap_err().to_string();
        assert!(
            message.contains("offset 0") && message.contains("checksum"),
            "{message}"
        );

        let whole = archive(&[entry("model.onnx", b'0', &[1u8; 2000])]);
        let message = read_package(&whole[..1200], "pkg.tar")
            .unwrap_err()
            .to_string();
        assert!(message.contains("declares 2000 bytes"), "{message}");

        let message = read_package(b"not an archive", "x")
            .unwrap_err()
            .to_string();
        assert!(message.contains("no manifest.json"), "{message}");
    }
}
