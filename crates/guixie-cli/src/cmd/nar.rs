use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use guixie_formats::nar::{self, NarHandler};

use crate::output::{print_json, stdout};
use crate::Context;

#[derive(Subcommand)]
pub enum NarCmd {
    /// Write the NAR of PATH to standard output (like `nix-store --dump`).
    Dump { path: PathBuf },
    /// Restore a NAR from standard input into DEST, which must not exist.
    Restore { dest: PathBuf },
    /// List the contents of a NAR file.
    Ls { file: PathBuf },
}

pub fn run(ctx: &Context, cmd: NarCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        NarCmd::Dump { path } => {
            let mut out = stdout();
            nar::dump_path(&path, &mut out)?;
            out.flush()?;
        }
        NarCmd::Restore { dest } => {
            let stdin = io::stdin().lock();
            nar::restore(io::BufReader::with_capacity(1 << 20, stdin), &dest)?;
        }
        NarCmd::Ls { file } => {
            let f = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let reader = io::BufReader::with_capacity(1 << 20, f);
            if ctx.json {
                let mut listing = nar::NarListing::default();
                nar::parse_to_end(reader, &mut listing)
                    .with_context(|| file.display().to_string())?;
                let entries: Vec<_> = listing
                    .entries
                    .iter()
                    .map(|(p, k)| entry_json(p, k))
                    .collect();
                print_json(&serde_json::Value::Array(entries))?;
            } else {
                let mut printer = Printer { out: stdout() };
                nar::parse_to_end(reader, &mut printer)
                    .with_context(|| file.display().to_string())?;
                printer.out.flush()?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn shown(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
}

fn entry_json(path: &[u8], kind: &nar::NodeKind) -> serde_json::Value {
    match kind {
        nar::NodeKind::Directory => serde_json::json!({"path": shown(path), "type": "directory"}),
        nar::NodeKind::Regular { executable, size } => {
            serde_json::json!({"path": shown(path), "type": "regular", "executable": executable, "size": size})
        }
        nar::NodeKind::Symlink { target } => {
            serde_json::json!({"path": shown(path), "type": "symlink", "target": String::from_utf8_lossy(target)})
        }
    }
}

/// Streams `type size path` lines, so listing a huge archive needs no memory for it.
struct Printer<W> {
    out: W,
}

impl<W: Write> NarHandler for Printer<W> {
    fn directory(&mut self, path: &[u8]) -> io::Result<()> {
        writeln!(self.out, "d {:>12} {}", "", shown(path))
    }
    fn symlink(&mut self, path: &[u8], target: &[u8]) -> io::Result<()> {
        writeln!(
            self.out,
            "l {:>12} {} -> {}",
            "",
            shown(path),
            String::from_utf8_lossy(target)
        )
    }
    fn file(
        &mut self,
        path: &[u8],
        executable: bool,
        size: u64,
        _: &mut dyn Read,
    ) -> io::Result<()> {
        writeln!(
            self.out,
            "{} {size:>12} {}",
            if executable { 'x' } else { 'f' },
            shown(path)
        )
    }
}
