//! `tern`: the one binary. A thin shell: it parses arguments and calls the crates.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use tern_formats::response::{ResponseEncoder, ResponseType};
use tern_formats::ContentType;
use tern_registry::Registry;
use tern_trainer::data::{Channel, Dataset, TrainingInput};
use tern_trainer::evaluation;
use tern_trainer::job::{self, JobOptions, SageMakerLayout};
use tern_trainer::outputs::OutputSet;
use tern_trainer::{algorithms, Artifact, TrainingContext};

mod progress;
mod serve;

mod edge;

#[derive(Parser)]
#[command(
    name = "tern",
    version,
    about = "Train SageMaker's built-in algorithms offline and run them anywhere"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model from local channels, or run SageMaker's training-container contract with --sagemaker-root.
    Train(TrainArgs),
    /// Score a model on labelled data, or cross-validate its hyperparameters with --kfold.
    Evaluate(EvaluateArgs),
    /// Compile a trained model into a portable package (model.onnx + manifest.json), fp32, f16 or int8.
    Compile(CompileArgs),
    /// Show a package's graph: ops, weights and their sizes, precision, verified tolerance.
    Inspect {
        /// The package folder (or a model.onnx).
        package: PathBuf,
    },
    /// Predict with a package folder (tern compile's output) or a trained model.tar.gz, printing SageMaker-shaped
    /// responses.
    Predict(PredictArgs),
    /// Write a trained model in another library's format (xgboost-json: xgboost's own JSON model).
    Export {
        /// The model artifact (model.tar.gz).
        model: PathBuf,
        /// The format, one its algorithm writes (xgboost-json).
        #[arg(long)]
        format: String,
        /// Where to write it.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Turn another library's model into a tern artifact (xgboost-json: `Booster.save_model("m.json")`).
    Import {
        /// The model file.
        input: PathBuf,
        /// The model file's format (xgboost-json).
        #[arg(long, default_value = "xgboost-json")]
        format: String,
        /// Where to write model.tar.gz.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Choose hyperparameters. `--elbow`: train K-Means once per k on --train and report the within-cluster sum of
    /// squared errors (SSE) against k, as a table and an SVG plot (the elbow method).
    Tune(TuneArgs),
    /// SageMaker batch transform: every input file (or s3:// object) to <name>.out, resumable.
    Transform(edge::TransformArgs),
    /// The edge device loop: camera frames / sensors / CSV in, predictions out to MQTT, GPIO/PWM, frames, stdout.
    Edge {
        #[command(subcommand)]
        command: edge::EdgeCommand,
    },
    /// The SageMaker-compatible endpoint: GET /ping, POST /invocations on port 8080 (SAGEMAKER_BIND_TO_PORT),
    /// production variants, inference pipelines, micro-batching, /metrics. Without a package it serves
    /// /opt/ml/model, as SageMaker runs a container (`docker run <image> serve`).
    Serve(serve::ServeArgs),
    /// List the algorithms and their hyperparameters (SageMaker's names, kinds and defaults).
    Algorithms {
        /// Show only this algorithm.
        name: Option<String>,
    },
}

#[derive(Args)]
struct TrainArgs {
    /// The algorithm (`tern algorithms` lists them); with --sagemaker-root it may be inferred from the
    /// hyperparameters or taken from TERN_ALGORITHM.
    #[arg(long, env = "TERN_ALGORITHM")]
    algorithm: Option<String>,
    /// The train channel: a file or a folder of files (the same as --channel train=PATH).
    #[arg(long)]
    train: Option<PathBuf>,
    /// The validation channel (model selection, early stopping, calibration); --channel validation=PATH.
    #[arg(long)]
    validation: Option<PathBuf>,
    /// The test channel (final metrics); --channel test=PATH.
    #[arg(long)]
    test: Option<PathBuf>,
    /// A channel, NAME=PATH (a file or a folder of files), repeatable; `tern algorithms NAME` lists the channels an
    /// algorithm reads.
    #[arg(long = "channel", value_name = "NAME=PATH")]
    channels: Vec<String>,
    /// Content type of the channels, e.g. text/csv, text/libsvm, application/x-recordio-protobuf, or NAME=TYPE for
    /// one channel; repeatable (default: from the file extension, else text/csv).
    #[arg(long = "content-type", value_name = "[NAME=]TYPE")]
    content_types: Vec<String>,
    /// A hyperparameter, NAME=VALUE, repeatable; SageMaker's names.
    #[arg(long = "hp", value_name = "NAME=VALUE")]
    hyperparameters: Vec<String>,
    /// A hyperparameters.json file (an object of strings), applied before --hp.
    #[arg(long)]
    hyperparameters_file: Option<PathBuf>,
    /// Where model.tar.gz, metrics.json and the plots go.
    #[arg(long, default_value = "out", required = false)]
    output_dir: PathBuf,
    /// Run the SageMaker training-container contract rooted here (e.g. /opt/ml).
    #[arg(long, conflicts_with_all = ["train", "validation", "test", "channels", "output_dir"])]
    sagemaker_root: Option<PathBuf>,
    /// Write the metrics JSON here instead of <output-dir>/metrics.json.
    #[arg(long)]
    metrics_json: Option<PathBuf>,
    /// No progress bars or metric lines.
    #[arg(long, short)]
    quiet: bool,
    /// Skip the learning-curve, ROC and PR plots.
    #[arg(long)]
    no_plots: bool,
    /// cpu, or gpu for the wgpu kernels (K-Means' assignment step; k-NN's query-to-index distances and IVF
    /// coarse quantizer; needs a build with `--features gpu` and a Vulkan/Metal/DX12 adapter). Not a SageMaker
    /// hyperparameter.
    #[arg(long, env = "TERN_DEVICE", default_value = "cpu")]
    device: tern_trainer::Device,
}

#[derive(Args)]
struct EvaluateArgs {
    /// The model artifact (model.tar.gz).
    model: PathBuf,
    /// Labelled data to score on (or to split into folds with --kfold).
    #[arg(long)]
    test: PathBuf,
    #[arg(long)]
    content_type: Option<String>,
    /// Cross-validate: retrain the model's hyperparameters on k-1 folds of --test, score the held-out fold, k times.
    #[arg(long)]
    kfold: Option<usize>,
    /// Keep class proportions in each fold.
    #[arg(long, requires = "kfold")]
    stratified: bool,
    /// Seed for the fold shuffle.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CompileArgs {
    /// The model artifact (model.tar.gz).
    model: PathBuf,
    /// Weight precision: fp32, f16 or int8.
    #[arg(long, default_value = "fp32", value_parser = ["fp32", "f16", "int8"])]
    precision: String,
    /// Rows (labelled like training data) to calibrate int8 on and, without --held-out, to verify on.
    #[arg(long)]
    calibration: Option<PathBuf>,
    /// Held-out rows to verify the package's drift against the trained model on.
    #[arg(long)]
    held_out: Option<PathBuf>,
    /// Content type of --calibration / --held-out (default: from the extension, else text/csv).
    #[arg(long)]
    content_type: Option<String>,
    /// Targets to verify the graph's ops for: x86_64, aarch64, wasm32, gpu (repeatable; default the CPU targets).
    #[arg(long = "target")]
    targets: Vec<String>,
    /// Write the package even when drift exceeds the precision's documented limit, and into an existing folder
    /// that holds other files (only model.onnx and manifest.json in it are replaced; nothing else is touched).
    #[arg(long)]
    force: bool,
    /// Print the compiled graph (as tern inspect does).
    #[arg(long)]
    print: bool,
    /// The package folder to write: a new folder, an empty one or an earlier package (replaced whole); a folder
    /// holding other files is refused without --force.
    #[arg(long, short)]
    output: PathBuf,
}

#[derive(Args)]
struct PredictArgs {
    /// A package folder (model.onnx + manifest.json) or a model artifact (model.tar.gz).
    model: PathBuf,
    /// Rows to predict (stdin when absent).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Content type of the input: text/csv (no label column), application/json, application/jsonlines,
    /// application/x-recordio-protobuf, text/libsvm.
    #[arg(long, default_value = "text/csv")]
    content_type: String,
    /// Response type: application/json, application/jsonlines, text/csv or application/x-recordio-protobuf; a
    /// `verbose=true` parameter adds k-NN's neighbours (distances and labels) to every record.
    #[arg(long, default_value = "application/json")]
    accept: String,
    /// Write here instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Predictions cut short are worth a line; a listing cut short by `| head` is what its reader asked for.
    let reports_closed_stdout = matches!(cli.command, Command::Predict(_));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if !reports_closed_stdout && closed_stdout(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-separated, each cause left out when the text before already holds it (library
/// errors often show their source in their own message as well as returning it as the source).
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Why a write to standard output failed: the program reading the pipe exited (`tern algorithms | head -1`).
#[derive(Debug)]
struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output is a pipe whose reader has closed it (broken pipe)")
    }
}

impl std::error::Error for StdoutClosed {}

/// Standard output for a command's results. Unlike `println!`, which panics, a write to a closed pipe returns an
/// error naming the pipe ([`StdoutClosed`]).
struct Stdout(std::io::StdoutLock<'static>);

fn stdout() -> Stdout {
    Stdout(std::io::stdout().lock())
}

fn name_closed_pipe(error: std::io::Error) -> std::io::Error {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::io::Error::new(std::io::ErrorKind::BrokenPipe, StdoutClosed)
    } else {
        error
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(name_closed_pipe)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(name_closed_pipe)
    }
}

/// Whether `error` comes from writing to a standard output whose reader has gone.
fn closed_stdout(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<StdoutClosed>()
            || cause
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<StdoutClosed>())
    })
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train(args),
        Command::Tune(args) => tune(args),
        Command::Evaluate(args) => evaluate(args),
        Command::Compile(args) => compile(args),
        Command::Inspect { package } => inspect(&package),
        Command::Predict(args) if args.model.is_dir() => predict_package(args),
        Command::Predict(args) => predict(args),
        Command::Transform(args) => edge::transform(args),
        Command::Edge { command } => edge::edge(command),
        Command::Export {
            model,
            format,
            output,
        } => {
            let (artifact, algorithm) = load_model(&model)?;
            let bytes = algorithm.export(&artifact, &format)?;
            tern_trainer::artifact::write_atomically(&output, &bytes)?;
            eprintln!("wrote {}", output.display());
            Ok(())
        }
        Command::Import {
            input,
            format,
            output,
        } => {
            let algorithm = Registry::shipped().importer(&format)?.algorithm;
            let bytes =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let artifact = algorithm.import(&bytes, &format, &input.display().to_string())?;
            artifact.write(&output)?;
            eprintln!("wrote {}", output.display());
            Ok(())
        }
        Command::Serve(args) => serve::serve(args),
        Command::Algorithms { name } => list_algorithms(name.as_deref()),
    }
}

/// The channels `tern train` was given: `--channel NAME=PATH` and the `--train`/`--validation`/`--test` shorthands,
/// each with its `--content-type` (`NAME=TYPE` for one channel, a bare `TYPE` for the others). Whether the algorithm
/// reads them is checked by the job, before data is read.
fn training_input(args: &TrainArgs) -> Result<TrainingInput> {
    let mut paths: BTreeMap<String, PathBuf> = BTreeMap::new();
    let shorthands = [
        ("train", &args.train),
        ("validation", &args.validation),
        ("test", &args.test),
    ];
    let given = shorthands
        .iter()
        .filter_map(|(name, path)| path.as_ref().map(|p| (name.to_string(), p.clone())));
    let pairs = args
        .channels
        .iter()
        .map(|pair| -> Result<(String, PathBuf)> {
            let (name, path) = pair.split_once('=').ok_or_else(|| {
                anyhow!(
                "--channel {pair:?}: expected NAME=PATH, e.g. --channel validation=data/val.csv"
            )
            })?;
            Ok((name.trim().to_string(), PathBuf::from(path)))
        });
    for entry in given.map(Ok).chain(pairs) {
        let (name, path) = entry?;
        if name.is_empty() {
            bail!("--channel: a channel needs a name (NAME=PATH)");
        }
        if let Some(first) = paths.insert(name.clone(), path.clone()) {
            bail!(
                "channel {name} is given twice ({} and {}); give it once",
                first.display(),
                path.display()
            );
        }
    }
    let mut default_type = None;
    let mut channel_types = BTreeMap::new();
    for text in &args.content_types {
        match text.split_once('=') {
            Some((name, mime)) if !name.contains('/') => {
                if !paths.contains_key(name.trim()) {
                    bail!(
                        "--content-type {text}: no channel {:?} is given",
                        name.trim()
                    );
                }
                channel_types.insert(name.trim().to_string(), ContentType::parse(mime)?);
            }
            _ if default_type.is_some() => {
                bail!("--content-type: one type for all channels is given twice; use NAME=TYPE per channel")
            }
            _ => default_type = Some(ContentType::parse(text)?),
        }
    }
    let others: Vec<String> = paths.keys().filter(|n| *n != "train").cloned().collect();
    let mut open = |name: &str| -> Result<Option<Channel>> {
        let Some(path) = paths.remove(name) else {
            return Ok(None);
        };
        let content_type = channel_types.get(name).or(default_type.as_ref()).cloned();
        Ok(Some(Channel::from_path(name, &path, content_type)?))
    };
    let train = open("train")?.ok_or_else(|| {
        anyhow!(
            "no train channel: give --train PATH (or --channel train=PATH), or --sagemaker-root"
        )
    })?;
    let mut input = TrainingInput::new(train);
    for name in &others {
        input = input.with(open(name)?);
    }
    Ok(input)
}

fn parse_content_type(text: Option<&str>) -> Result<Option<ContentType>> {
    text.map(ContentType::parse).transpose().map_err(Into::into)
}

#[derive(Args)]
struct TuneArgs {
    /// The elbow method for K-Means (the tuning tern runs locally).
    #[arg(long, required = true)]
    elbow: bool,
    /// The train channel: a file or a folder of files.
    #[arg(long)]
    train: PathBuf,
    #[arg(long)]
    content_type: Option<String>,
    /// The values of k to train, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2,3,4,5,6,7,8,9,10")]
    k: Vec<usize>,
    /// Other K-Means hyperparameters, NAME=VALUE (repeatable); feature_dim defaults to the data's width.
    #[arg(long = "hp", value_name = "NAME=VALUE")]
    hyperparameters: Vec<String>,
    /// Where to write the SSE-against-k plot (.svg or .png).
    #[arg(long, default_value = "elbow.svg")]
    plot: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `--hp NAME=VALUE` pairs into `raw`, over what `raw` holds (a `--hyperparameters-file`'s values); a name given
/// twice with `--hp` is refused, so a typo'd repeat never silently wins.
fn insert_pairs(pairs: &[String], raw: &mut BTreeMap<String, String>) -> Result<()> {
    let mut given = BTreeMap::new();
    for pair in pairs {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("--hp {pair:?}: expected NAME=VALUE, e.g. --hp epochs=15"))?;
        let name = name.trim().to_string();
        if let Some(first) = given.insert(name.clone(), value.trim().to_string()) {
            bail!(
                "--hp {name} is given twice ({name}={first} and {name}={}); give it once",
                value.trim()
            );
        }
        raw.insert(name, value.trim().to_string());
    }
    Ok(())
}

fn raw_hyperparameters(args: &TrainArgs) -> Result<BTreeMap<String, String>> {
    let mut raw = BTreeMap::new();
    if let Some(path) = &args.hyperparameters_file {
        let layout_free =
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_slice(&layout_free)
            .with_context(|| format!("{}: not valid JSON", path.display()))?;
        let object = value
            .as_object()
            .ok_or_else(|| anyhow!("{}: expected a JSON object", path.display()))?;
        for (name, value) in object {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            raw.insert(name.clone(), text);
        }
    }
    insert_pairs(&args.hyperparameters, &mut raw)?;
    Ok(raw)
}

fn tune(args: TuneArgs) -> Result<()> {
    // K-Means' own tuning aid, until `tern tune` runs SageMaker's tuning jobs for every algorithm.
    let algorithm = Registry::shipped().find("kmeans")?.algorithm;
    let channel = Channel::from_path(
        "train",
        &args.train,
        parse_content_type(args.content_type.as_deref())?,
    )?;
    let mut raw = BTreeMap::new();
    insert_pairs(&args.hyperparameters, &mut raw)?;
    if !raw.contains_key("feature_dim") {
        let width = channel.load(None)?.n_features();
        raw.insert("feature_dim".to_string(), width.to_string());
    }
    let first = args
        .k
        .first()
        .ok_or_else(|| anyhow!("--k: give one or more values of k"))?;
    // Every run sets its own k; the table check needs one.
    raw.insert("k".to_string(), first.to_string());
    let hyperparameters = algorithm.parse_hyperparameters(&raw)?;
    let points = algorithms::kmeans::elbow(&channel, &args.k, &hyperparameters)?;
    algorithms::kmeans::plot_elbow(&points, &args.plot)?;
    let mut out = stdout();
    if args.json {
        let rows: Vec<_> = points
            .iter()
            .map(|&(k, sse)| serde_json::json!({"k": k, "sse": sse}))
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"elbow": rows, "plot": args.plot}))?
        )?;
        return Ok(());
    }
    writeln!(out, "{:>6} {:>16} {:>10}", "k", "SSE", "change")?;
    let mut previous: Option<f64> = None;
    for &(k, sse) in &points {
        let change = previous
            .filter(|&p| p > 0.0)
            .map(|p| format!("{:+.1}%", 100.0 * (sse - p) / p))
            .unwrap_or_default();
        writeln!(out, "{k:>6} {sse:>16.4} {change:>10}")?;
        previous = Some(sse);
    }
    writeln!(out, "wrote {}", args.plot.display())?;
    Ok(())
}

fn train(args: TrainArgs) -> Result<()> {
    let options = JobOptions {
        quiet: args.quiet,
        metrics_path: args.metrics_json.clone(),
        no_plots: args.no_plots,
        device: args.device,
        observer: Some(std::sync::Arc::new(progress::Bars::new(
            progress::BarStyle::Steps,
        ))),
    };
    if let Some(root) = &args.sagemaker_root {
        let layout = SageMakerLayout::new(root);
        let algorithms = Registry::shipped().algorithms();
        let outcome = job::run_sagemaker(&layout, &algorithms, args.algorithm.as_deref(), &options)
            .with_context(|| {
                format!(
                    "training job failed (reason written to {})",
                    layout.failure_path().display()
                )
            })?;
        report(&outcome, args.quiet);
        return Ok(());
    }
    let name = args
        .algorithm
        .as_deref()
        .ok_or_else(|| anyhow!("--algorithm is required (tern algorithms lists them)"))?;
    let algorithm = Registry::shipped().find(name)?.algorithm;
    let raw = raw_hyperparameters(&args)?;
    // Hyperparameters are checked before any data is opened.
    algorithm.parse_hyperparameters(&raw)?;
    let input = training_input(&args)?;
    let outcome = job::run(
        algorithm,
        &raw,
        &input,
        &args.output_dir,
        &args.output_dir,
        &options,
    )?;
    report(&outcome, args.quiet);
    Ok(())
}

fn report(outcome: &job::JobOutcome, quiet: bool) {
    if quiet {
        return;
    }
    eprintln!("model: {}", outcome.model_path.display());
    eprintln!("metrics: {}", outcome.metrics_path.display());
    for plot in &outcome.plots {
        eprintln!("plot: {}", plot.display());
    }
    for (name, value) in &outcome.artifact.meta.training_metrics {
        eprintln!("  {name} = {value:.6}");
    }
}

fn load_model(path: &Path) -> Result<(Artifact, &'static dyn tern_trainer::Algorithm)> {
    let artifact = Artifact::read(path)?;
    let algorithm = Registry::shipped().of(&artifact)?.algorithm;
    Ok((artifact, algorithm))
}

fn load_dataset(
    path: &Path,
    content_type: Option<&str>,
    feature_dim: Option<usize>,
) -> Result<Dataset> {
    let channel = Channel::from_path("test", path, parse_content_type(content_type)?)?;
    Ok(channel.load(feature_dim)?)
}

fn evaluate(args: EvaluateArgs) -> Result<()> {
    let (artifact, algorithm) = load_model(&args.model)?;
    let dataset = load_dataset(
        &args.test,
        args.content_type.as_deref(),
        Some(artifact.meta.feature_dim),
    )?;
    let mut out = stdout();
    if let Some(k) = args.kfold {
        let hyperparameters = algorithm.parse_hyperparameters(&artifact.meta.hyperparameters)?;
        let mut context = TrainingContext::new(args.json).with_observer(std::sync::Arc::new(
            progress::Bars::new(progress::BarStyle::Steps),
        ));
        let result = evaluation::cross_validate(
            algorithm,
            &hyperparameters,
            &dataset,
            k,
            args.stratified,
            args.seed,
            &mut context,
        )?;
        if args.json {
            let summary: BTreeMap<_, _> = result
                .summary
                .iter()
                .map(|(name, (mean, std))| {
                    (name.clone(), serde_json::json!({"mean": mean, "std": std}))
                })
                .collect();
            let json = serde_json::json!({"kfold": k, "stratified": args.stratified, "folds": result.folds, "summary": summary});
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        } else {
            let kind = if args.stratified { "stratified " } else { "" };
            writeln!(
                out,
                "{k}-fold {kind}cross-validation of {} on {} rows",
                algorithm.name(),
                dataset.n_rows()
            )?;
            for (name, (mean, std)) in &result.summary {
                writeln!(out, "  {name:<18} {mean:.4} ± {std:.4}")?;
            }
        }
        return Ok(());
    }
    let predictor = algorithm.load(&artifact)?;
    let result = evaluation::evaluate(predictor.as_ref(), &dataset, "test")?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&result.metrics)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} on {} ({} rows)",
        algorithm.name(),
        args.test.display(),
        dataset.n_rows()
    )?;
    for (name, value) in &result.metrics {
        writeln!(out, "  {name:<18} {value:.4}")?;
    }
    if let Some(confusion) = &result.confusion {
        writeln!(out, "{}", confusion.to_table())?;
    }
    if let Some(importance) = algorithm.feature_importance(&artifact)? {
        writeln!(out, "feature importance ({}, top 10):", importance.measure)?;
        for (feature, value) in importance.features.iter().take(10) {
            writeln!(out, "  f{feature:<6} {value:.4}")?;
        }
    }
    Ok(())
}

/// Where predictions go: standard output, or `--output` staged and committed only once every record is written
/// (a bad record leaves an earlier file as it was). `--output` naming the input or the model is refused.
fn prediction_output(args: &PredictArgs) -> Result<(Box<dyn Write>, Option<OutputSet>)> {
    let Some(path) = &args.output else {
        return Ok((Box::new(std::io::BufWriter::new(stdout())), None));
    };
    for (flag, input) in [
        ("--input", args.input.as_deref()),
        ("the model", Some(args.model.as_path())),
    ] {
        if input.is_some_and(|input| same_file(input, path)) {
            bail!(
                "--output {} is {flag}: predictions would overwrite what they are read from; choose another file",
                path.display()
            );
        }
    }
    let mut outputs = OutputSet::new();
    let staged = outputs.stage(path)?;
    let file =
        std::fs::File::create(&staged).with_context(|| format!("creating {}", path.display()))?;
    Ok((Box::new(std::io::BufWriter::new(file)), Some(outputs)))
}

/// Whether `a` and `b` name the same existing file (through links, `..` or hard links).
fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(a_meta), Ok(b_meta)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a_meta.dev() == b_meta.dev() && a_meta.ino() == b_meta.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (a_meta, b_meta);
        matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    }
}

fn predict(args: PredictArgs) -> Result<()> {
    let (artifact, algorithm) = load_model(&args.model)?;
    let predictor = algorithm.load(&artifact)?;
    let content_type = ContentType::parse(&args.content_type)?;
    // Prediction rows carry no label: plain text/csv means label_size=0 here, as SageMaker's endpoints read it.
    let content_type = match content_type {
        ContentType::Csv { .. } if !args.content_type.contains("label_size") => {
            ContentType::Csv { label_size: 0 }
        }
        other => other,
    };
    let source = args
        .input
        .as_ref()
        .map_or("stdin".to_string(), |p| p.display().to_string());
    let reader: Box<dyn std::io::Read + Send> = match &args.input {
        Some(path) => Box::new(BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
        None => Box::new(std::io::stdin()),
    };
    let stream = tern_formats::open_reader(&content_type, reader, &source)?;
    let feature_dim = predictor.feature_dim();
    let (mut out, staged) = prediction_output(&args)?;
    // The one SageMaker response encoder runtime-core answers through too: a model and its package answer alike.
    let response_type = ResponseType::from_accept(&args.accept)?;
    let verbose = tern_formats::response::is_verbose(&args.accept);
    let mut encoder = ResponseEncoder::new(response_type, predictor.response_key(), &mut out);
    // Stream in batches so a large input never sits in memory whole.
    const BATCH: usize = 4096;
    let mut batch = tern_trainer::data::DatasetBuilder::new(&source, Some(feature_dim));
    let flush = |builder: tern_trainer::data::DatasetBuilder,
                 encoder: &mut ResponseEncoder<_>|
     -> Result<()> {
        if builder.is_empty() {
            return Ok(());
        }
        let dataset = builder.finish()?;
        for prediction in predictor.predict_responses(&dataset.features, verbose)? {
            encoder.write(&prediction)?;
        }
        Ok(())
    };
    for record in stream {
        let mut record = record?;
        record.label = None;
        batch.push(record)?;
        if batch.len() == BATCH {
            let full = std::mem::replace(
                &mut batch,
                tern_trainer::data::DatasetBuilder::new(&source, Some(feature_dim)),
            );
            flush(full, &mut encoder)?;
        }
    }
    flush(batch, &mut encoder)?;
    encoder.finish()?;
    out.flush()?;
    drop(out);
    if let Some(outputs) = staged {
        outputs.commit()?;
    }
    Ok(())
}

fn compile(args: CompileArgs) -> Result<()> {
    let artifact = Artifact::read(&args.model)?;
    let feature_dim = Some(artifact.meta.feature_dim);
    let rows = |path: &Option<PathBuf>| -> Result<Option<Dataset>> {
        path.as_ref()
            .map(|p| load_dataset(p, args.content_type.as_deref(), feature_dim))
            .transpose()
    };
    let precision = match args.precision.as_str() {
        "f16" => tern_runtime::Precision::F16,
        "int8" => tern_runtime::Precision::Int8,
        _ => tern_runtime::Precision::Fp32,
    };
    let options = tern_compiler::CompileOptions {
        precision,
        targets: args.targets.clone(),
        calibration: rows(&args.calibration)?,
        held_out: rows(&args.held_out)?,
        force: args.force,
    };
    let package = Registry::shipped().compile(&artifact, &options)?;
    let overwrite = if args.force {
        tern_compiler::Overwrite::Files
    } else {
        tern_compiler::Overwrite::PackageOnly
    };
    package.write_with(&args.output, overwrite)?;
    if args.print {
        writeln!(stdout(), "{}", tern_compiler::inspect(&package.onnx)?)?;
    }
    let tolerance = &package.manifest.tolerance;
    eprintln!(
        "wrote {} ({} precision, model.onnx {} bytes); verified on {} rows: max |score drift| {:.3e}, label \
         agreement {:.4}; manifest tolerance: absolute {:.1e}, relative {:.1e}",
        args.output.display(),
        args.precision,
        package.onnx.len(),
        tolerance.verified_rows,
        tolerance.measured_absolute,
        tolerance.measured_label_agreement,
        tolerance.absolute,
        tolerance.relative,
    );
    Ok(())
}

fn inspect(path: &Path) -> Result<()> {
    let (onnx_path, manifest_path) = if path.is_dir() {
        (path.join("model.onnx"), Some(path.join("manifest.json")))
    } else {
        (path.to_path_buf(), None)
    };
    let onnx =
        std::fs::read(&onnx_path).with_context(|| format!("reading {}", onnx_path.display()))?;
    let mut out = stdout();
    writeln!(out, "{}", tern_compiler::inspect(&onnx)?)?;
    if let Some(manifest_path) = manifest_path.filter(|p| p.exists()) {
        let manifest = std::fs::read(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?;
        // The manifest's verified tolerance describes the graph it was written with, and no other.
        tern_runtime::package::verified_manifest(
            &manifest,
            &manifest_path.display().to_string(),
            &onnx,
            &onnx_path.display().to_string(),
        )?;
        writeln!(
            out,
            "manifest.json:\n{}",
            String::from_utf8_lossy(&manifest)
        )?;
    }
    Ok(())
}

fn predict_package(args: PredictArgs) -> Result<()> {
    let package = tern_runtime::Package::load(&args.model)?;
    let reader: Box<dyn std::io::Read + Send> = match &args.input {
        Some(path) => Box::new(BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
        None => Box::new(std::io::stdin()),
    };
    let (mut out, staged) = prediction_output(&args)?;
    package.predict_stream(reader, &args.content_type, &args.accept, &mut out)?;
    out.flush()?;
    drop(out);
    if let Some(outputs) = staged {
        outputs.commit()?;
    }
    Ok(())
}

fn list_algorithms(only: Option<&str>) -> Result<()> {
    let registry = Registry::shipped();
    let selected: Vec<_> = match only {
        Some(name) => vec![registry.find(name)?.algorithm],
        None => registry.algorithms(),
    };
    let mut out = stdout();
    for algorithm in selected {
        writeln!(out, "{}", algorithm.name())?;
        writeln!(out, "  channels:")?;
        for channel in algorithm.channels() {
            let required = if channel.required {
                "required"
            } else {
                "optional"
            };
            writeln!(
                out,
                "    {:<12} {required}; {}; {}",
                channel.name,
                channel.content_types.join(", "),
                channel.purpose
            )?;
        }
        writeln!(out, "  hyperparameters:")?;
        for spec in algorithm.hyperparameters() {
            let default = match (spec.required, spec.default) {
                (true, _) => "required".to_string(),
                (false, Some(d)) => format!("default {d}"),
                (false, None) => "optional".to_string(),
            };
            let auto = if spec.accepts_auto { " or auto" } else { "" };
            writeln!(out, "    {:<42} {}{auto}; {default}", spec.name, spec.kind)?;
        }
    }
    Ok(())
}
