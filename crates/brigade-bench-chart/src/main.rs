//! `brigade-bench-chart`: draws one benchmark table as an SVG bar chart.
//!
//! bench/service writes each of its tables as JSON (the contract of [`table::Table`]) and calls
//! this binary to draw it for docs/benchmarks.md, so the charts in the docs come from the very
//! run whose table they show, not from a hand-made picture.
//!
//! Usage: `brigade-bench-chart [INPUT.json|-] [-o OUTPUT.svg]`; reads stdin without an input
//! (or with `-`) and writes stdout without `-o`.

mod draw;
mod table;

use std::io::{Read, Write};
use std::process::ExitCode;

/// Why the binary failed.
#[derive(Debug, thiserror::Error)]
enum ChartError {
    #[error("usage: brigade-bench-chart [INPUT.json|-] [-o OUTPUT.svg]")]
    Usage,
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Table(#[from] table::TableError),
    #[error(transparent)]
    Draw(#[from] draw::DrawError),
}

/// Where to read the table and write the chart (`None`: stdin, stdout).
#[derive(Debug, Default, PartialEq)]
struct Args {
    input: Option<String>,
    output: Option<String>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, ChartError> {
    let mut parsed = Args::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-o" | "--output" => parsed.output = Some(args.next().ok_or(ChartError::Usage)?),
            "-h" | "--help" => return Err(ChartError::Usage),
            "-" if parsed.input.is_none() => parsed.input = Some(arg),
            _ if parsed.input.is_none() && !arg.starts_with('-') => parsed.input = Some(arg),
            _ => return Err(ChartError::Usage),
        }
    }
    parsed.input = parsed.input.filter(|input| input != "-");
    Ok(parsed)
}

fn run(args: Args) -> Result<(), ChartError> {
    let io = |path: &str| {
        let path = path.to_owned();
        move |source| ChartError::Io { path, source }
    };
    let text = match &args.input {
        Some(path) => std::fs::read_to_string(path).map_err(io(path))?,
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(io("stdin"))?;
            text
        }
    };
    let svg = draw::svg(&table::Table::from_json(&text)?)?;
    match &args.output {
        Some(path) => std::fs::write(path, svg).map_err(io(path)),
        None => std::io::stdout()
            .write_all(svg.as_bytes())
            .map_err(io("stdout")),
    }
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("brigade-bench-chart: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, ChartError> {
        parse_args(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn arguments_name_input_and_output() {
        assert_eq!(args(&[]).unwrap(), Args::default());
        assert_eq!(args(&["-"]).unwrap(), Args::default());
        let both = args(&["t.json", "-o", "c.svg"]).unwrap();
        assert_eq!(both.input.as_deref(), Some("t.json"));
        assert_eq!(both.output.as_deref(), Some("c.svg"));
        assert!(matches!(args(&["a", "b"]), Err(ChartError::Usage)));
        assert!(matches!(args(&["-o"]), Err(ChartError::Usage)));
    }

    #[test]
    fn a_file_round_trips_to_an_svg_file() {
        let dir = std::env::temp_dir().join(format!("bench-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("t.json");
        let output = dir.join("c.svg");
        std::fs::write(
            &input,
            r#"{"title":"Idle memory","unit":"MiB","rows":[{"label":"idle RSS","series":[{"name":"RSS","value":14.2}]}]}"#,
        )
        .unwrap();
        run(Args {
            input: Some(input.display().to_string()),
            output: Some(output.display().to_string()),
        })
        .unwrap();
        let svg = std::fs::read_to_string(&output).unwrap();
        assert!(svg.contains("Idle memory") && svg.contains("14.2"), "{svg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_named() {
        let error = run(Args {
            input: Some("/nonexistent/t.json".into()),
            output: None,
        })
        .unwrap_err();
        assert!(
            error.to_string().starts_with("/nonexistent/t.json:"),
            "{error}"
        );
    }
}
