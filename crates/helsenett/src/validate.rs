//! `helsenett validate FILE...`: the validator on the command line, offline. Every problem is
//! printed as `FILE:LINE: PATH: MESSAGE`; if any file is invalid the command ends in an error
//! saying how many, with a non-zero exit status.

use std::path::PathBuf;

use anyhow::Context;
use helsenett_exchange::samsvar_api::Validation;

#[derive(clap::Args)]
pub struct Args {
    /// MsgHead v1.2, AppRec v1.0/v1.1 or Dialogmelding v1.0/v1.1 documents.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print each file's result as one JSON object per line instead.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut invalid = 0;
    for file in &args.files {
        let document =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let validation = Validation::of(&document);
        invalid += usize::from(!validation.valid);
        if args.json {
            let mut line = serde_json::to_value(&validation)?;
            line["file"] = file.display().to_string().into();
            println!("{line}");
            continue;
        }
        let standard = validation
            .standard
            .as_deref()
            .unwrap_or("an unknown standard");
        if validation.valid {
            println!("{}: valid {standard}", file.display());
        }
        for problem in &validation.problems {
            println!(
                "{}:{}: {}: {}",
                file.display(),
                problem.line,
                problem.path,
                problem.message
            );
        }
        if !validation.valid {
            println!(
                "{}: invalid {standard} ({} problem(s))",
                file.display(),
                validation.problems.len()
            );
        }
    }
    match invalid {
        0 => Ok(()),
        n => anyhow::bail!("{n} of {} document(s) are not valid", args.files.len()),
    }
}
