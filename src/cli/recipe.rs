//! `synchronicity recipe` (`cargo synchronicity recipe` in a workspace): the recipe of the
//! workspace's dependencies and its id (`crate::recipe` reads it; the format is
//! `synchronicity_verify::recipe`).

use std::path::PathBuf;

use clap::Args;

use synchronicity_verify::recipe::{MAX_RECIPE_SIZE, Recipe};

use crate::recipe::{RecipeOptions, recipe_of};

/// Which workspace, and the feature flags of its build (`recipe` and `cook`).
#[derive(Debug, Args)]
pub struct WorkspaceArgs {
    /// The workspace's `Cargo.toml` [default: cargo's search from the current directory].
    #[arg(long)]
    pub manifest_path: Option<PathBuf>,
    /// Features of the workspace build, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "all_features")]
    pub features: Vec<String>,
    /// Build without the members' default features.
    #[arg(long)]
    pub no_default_features: bool,
    /// Build with every feature of every member.
    #[arg(long)]
    pub all_features: bool,
}

impl WorkspaceArgs {
    /// The recipe options these flags name (toolchain, target and RUSTFLAGS: the host's).
    pub(super) fn options(&self) -> RecipeOptions {
        RecipeOptions {
            manifest_path: self.manifest_path.clone(),
            features: self.features.clone(),
            no_default_features: self.no_default_features,
            all_features: self.all_features,
            ..RecipeOptions::default()
        }
    }
}

/// Arguments of `recipe`.
#[derive(Debug, Args)]
pub struct RecipeArgs {
    #[command(flatten)]
    pub workspace: WorkspaceArgs,
    /// Target triple [default: the host's].
    #[arg(long)]
    pub target: Option<String>,
    /// Toolchain version [default: the `rustc` on PATH].
    #[arg(long)]
    pub toolchain: Option<String>,
    /// Also write the recipe (canonical CBOR) to this file, for `submit --recipe`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the whole recipe as JSON after its id.
    #[arg(long)]
    pub json: bool,
}

/// The recipe at `path`: a workspace (its directory or a `Cargo.toml`, read with the
/// host's toolchain and target and RUSTFLAGS from the environment) or a recipe file
/// (canonical CBOR, at most [`MAX_RECIPE_SIZE`] bytes).
pub(super) fn read_recipe(path: &std::path::Path) -> anyhow::Result<Recipe> {
    let manifest = if path.is_dir() {
        Some(path.join("Cargo.toml"))
    } else if path.file_name().is_some_and(|n| n == "Cargo.toml") {
        Some(path.to_path_buf())
    } else {
        None
    };
    if let Some(manifest_path) = manifest {
        let opts = RecipeOptions {
            manifest_path: Some(manifest_path),
            ..RecipeOptions::default()
        };
        return Ok(recipe_of(&opts)?);
    }
    let bytes = crate::node_dir::read_bounded(path, MAX_RECIPE_SIZE as u64)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let recipe =
        Recipe::from_cbor(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    recipe
        .check_contents()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(recipe)
}

pub(super) fn recipe(args: RecipeArgs) -> anyhow::Result<()> {
    let opts = RecipeOptions {
        toolchain: args.toolchain,
        target: args.target,
        ..args.workspace.options()
    };
    let recipe = recipe_of(&opts)?;
    let bytes = recipe.to_cbor();
    println!("recipe {}", hex::encode(recipe.id()));
    println!(
        "  {} {} {}, RUSTFLAGS {:?}, features {:?}{}{}",
        recipe.toolchain,
        recipe.target,
        recipe.profile,
        recipe.rustflags.join(" "),
        recipe.features,
        if recipe.no_default_features {
            ", no default features"
        } else {
            ""
        },
        if recipe.all_features {
            ", all features"
        } else {
            ""
        },
    );
    let packages = recipe.lockfile.matches("[[package]]").count();
    println!(
        "  {} manifests, {} stubs, {} locked packages, {} bytes",
        recipe.manifests.len(),
        recipe.stubs().count(),
        packages,
        bytes.len()
    );
    if let Some(out) = &args.out {
        // Whole or not at all: temp file, fsync, rename (a crash leaves the old file or none).
        crate::node_dir::write_atomic(out, &bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
        println!("  written to {}", out.display());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&recipe)?);
    }
    Ok(())
}
