//! Reading the deployment files for the invariant tests in `tests/`: the Terraform module in
//! `infra/modules/tascomi-pipeline` and its example caller `infra/envs/example` (parsed with
//! `hcl-rs`, not evaluated: there is no provider here), `docker-compose.yml`, and the names the
//! Rust sources read from the environment.
//!
//! Every loader returns an error naming the file; the accessors return `None` when the
//! configuration does not have the shape asked for, so a test can say which invariant broke.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hcl::expr::{Expression, ObjectKey, Operation, Traversal, TraversalOperator};
use hcl::{Block, Body, Structure};

/// The workspace root (this crate is `tests/infra-check`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Terraform module (`infra/modules/tascomi-pipeline`): what every deployment runs.
pub fn module_dir() -> PathBuf {
    workspace_root().join("infra/modules/tascomi-pipeline")
}

/// The example root module calling it (`infra/envs/example`).
pub fn example_dir() -> PathBuf {
    workspace_root().join("infra/envs/example")
}

/// The stages in pipeline order, as the module's `locals.tf` names them.
pub const STAGES: [&str; 4] = common::stage::Stage::NAMES;

/// The Terraform of one module folder: every `*.tf` file, parsed.
#[derive(Debug)]
pub struct Terraform {
    files: Vec<(PathBuf, Body)>,
}

impl Terraform {
    /// Parses every `*.tf` file directly in `dir` (a module is one folder).
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "tf") {
                paths.push(path);
            }
        }
        paths.sort();
        anyhow::ensure!(!paths.is_empty(), "no .tf files in {}", dir.display());
        let mut files = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let body = hcl::parse(&text).with_context(|| format!("parsing {}", path.display()))?;
            files.push((path, body));
        }
        Ok(Self { files })
    }

    /// Top-level blocks of one kind (`resource`, `data`, `variable`, `locals`, ...).
    pub fn blocks<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.files
            .iter()
            .flat_map(|(_, body)| body.blocks())
            .filter(move |block| block.identifier() == kind)
    }

    /// `resource "<rtype>" "<name>"`.
    pub fn resource(&self, rtype: &str, name: &str) -> Option<&Block> {
        self.labelled("resource", rtype, name)
    }

    /// `data "<dtype>" "<name>"`.
    pub fn data(&self, dtype: &str, name: &str) -> Option<&Block> {
        self.labelled("data", dtype, name)
    }

    /// Every `resource "<rtype>" ...`, with its name.
    pub fn resources_of_type(&self, rtype: &str) -> Vec<(&str, &Block)> {
        self.of_type("resource", rtype)
    }

    /// Every `data "<dtype>" ...`, with its name.
    pub fn data_of_type(&self, dtype: &str) -> Vec<(&str, &Block)> {
        self.of_type("data", dtype)
    }

    /// The expression of a local value, from whichever `locals` block defines it.
    pub fn local(&self, name: &str) -> Option<&Expression> {
        self.blocks("locals").find_map(|block| attr(block, name))
    }

    fn labelled(&self, kind: &str, first: &str, second: &str) -> Option<&Block> {
        self.files
            .iter()
            .flat_map(|(_, body)| body.blocks())
            .find(|block| block.identifier() == kind && labels(block) == [first, second])
    }

    fn of_type(&self, kind: &'static str, rtype: &str) -> Vec<(&str, &Block)> {
        self.blocks(kind)
            .filter_map(|block| match block.labels() {
                [t, name] if t.as_str() == rtype => Some((name.as_str(), block)),
                _ => None,
            })
            .collect()
    }

    /// Resolves `local.<name>` references (one level) so that literal lists and objects kept
    /// in locals can be read where they are used.
    pub fn resolve<'a>(&'a self, expr: &'a Expression) -> &'a Expression {
        match traversal_path(expr).as_deref() {
            Some([root, name]) if root == "local" => self.local(name).unwrap_or(expr),
            _ => expr,
        }
    }

    /// What a reference into the locals stands for: `local.<name>`, and the named entries of
    /// object literals below it (`local.prefix_objects.parsed`, `local.task_statements["parse"]`).
    /// `None` for any other expression, or an entry that is not there.
    pub fn local_value<'a>(&'a self, expr: &Expression) -> Option<&'a Expression> {
        let Expression::Traversal(traversal) = expr else {
            return None;
        };
        if !matches!(&traversal.expr, Expression::Variable(root) if root.as_str() == "local") {
            return None;
        }
        let mut operators = traversal.operators.iter();
        let Some(TraversalOperator::GetAttr(name)) = operators.next() else {
            return None;
        };
        let mut value = self.local(name.as_str())?;
        for operator in operators {
            let key = match operator {
                TraversalOperator::GetAttr(key) => key.to_string(),
                TraversalOperator::Index(Expression::String(key)) => key.clone(),
                _ => return None,
            };
            value = object_entries(value)?.get(&key).copied()?;
        }
        Some(value)
    }

    /// The (key, value) pairs a `for_each` collection stands for, when the configuration alone
    /// says: an object or list literal, a local holding one, `merge(...)` and `keys(...)` of
    /// such, and `for` expressions over them (an `if` that cannot be decided keeps every element). `scope` binds
    /// the variables the collection refers to (`each`). `None` when a plan is needed to know the
    /// collection (a variable, a condition on one).
    pub fn instances(
        &self,
        collection: &Expression,
        scope: &Scope,
    ) -> Option<Vec<(String, Expression)>> {
        let collection = substitute(collection, scope);
        if let Some(value) = self.local_value(&collection) {
            return self.instances(value, &[]);
        }
        match &collection {
            Expression::Object(_) => Some(
                object_entries(&collection)?
                    .into_iter()
                    .map(|(key, value)| (key, value.clone()))
                    .collect(),
            ),
            Expression::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| (index.to_string(), item.clone()))
                    .collect(),
            ),
            Expression::FuncCall(call)
                if call.name.name.as_str() == "keys" && call.args.len() == 1 =>
            {
                let keys = self
                    .instances(&call.args[0], &[])?
                    .into_iter()
                    .map(|(key, _)| key);
                Some(
                    keys.enumerate()
                        .map(|(index, key)| (index.to_string(), Expression::String(key)))
                        .collect(),
                )
            }
            Expression::FuncCall(call) if call.name.name.as_str() == "merge" => {
                let mut parts = call.args.clone();
                if call.expand_final {
                    let last = parts.pop()?;
                    parts.extend(
                        self.instances(&last, &[])?
                            .into_iter()
                            .map(|(_, part)| part),
                    );
                }
                let mut merged = BTreeMap::new();
                for part in &parts {
                    merged.extend(self.instances(part, &[])?);
                }
                Some(merged.into_iter().collect())
            }
            Expression::ForExpr(for_expr) => {
                let mut found = Vec::new();
                for (key, value) in self.instances(&for_expr.collection_expr, &[])? {
                    let mut vars = vec![(for_expr.value_var.to_string(), value)];
                    if let Some(key_var) = &for_expr.key_var {
                        vars.push((key_var.to_string(), Expression::String(key)));
                    }
                    let skipped = for_expr.cond_expr.as_ref().is_some_and(|cond| {
                        render(&substitute(cond, &vars), &[]).ok() == Some(hcl::Value::Bool(false))
                    });
                    if skipped {
                        continue;
                    }
                    let value = substitute(&for_expr.value_expr, &vars);
                    match &for_expr.key_expr {
                        Some(key_expr) => match substitute(key_expr, &vars) {
                            Expression::String(key) => found.push((key, value)),
                            _ => return None,
                        },
                        None => found.push((found.len().to_string(), value)),
                    }
                }
                Some(found)
            }
            _ => None,
        }
    }

    /// The nested blocks `name` of `block` as the provider receives them, in `scope`: the plain
    /// ones, and one `content` per element of each `dynamic "<name>"` block, with its iterator
    /// (`<name>.key`, `<name>.value`) bound to the element. A `dynamic` block whose `for_each`
    /// needs a plan gives its `content` once.
    pub fn expand(&self, block: &Block, name: &str, scope: &Scope) -> Vec<Block> {
        let mut found = Vec::new();
        for inner in block.body().blocks() {
            if inner.identifier() == name {
                found.push(substitute_block(inner, scope));
                continue;
            }
            if inner.identifier() != "dynamic" || labels(inner) != [name] {
                continue;
            }
            let Some(content) = inner.body().blocks().find(|b| b.identifier() == "content") else {
                continue;
            };
            let iterator = attr(inner, "iterator").map_or_else(|| name.to_owned(), text);
            match attr(inner, "for_each").and_then(|for_each| self.instances(for_each, scope)) {
                Some(elements) => {
                    for (key, value) in elements {
                        let mut inner_scope = scope.to_vec();
                        inner_scope.push((iterator.clone(), key_value(key, value)));
                        found.push(substitute_block(content, &inner_scope));
                    }
                }
                None => found.push(substitute_block(content, scope)),
            }
        }
        found
    }
}

/// Variables bound to expressions while a block is read: `each` for one instance of a
/// `for_each` block, the iterator of a `dynamic` block, the variables of a `for` expression. A
/// later binding hides an earlier one of the same name.
pub type Scope = [(String, Expression)];

/// `{ key = <key>, value = <value> }`: what `each`, or a `dynamic` block's iterator, is bound to.
pub fn key_value(key: String, value: Expression) -> Expression {
    Expression::Object(
        [
            (
                ObjectKey::Identifier(hcl::Identifier::sanitized("key")),
                Expression::String(key),
            ),
            (
                ObjectKey::Identifier(hcl::Identifier::sanitized("value")),
                value,
            ),
        ]
        .into_iter()
        .collect(),
    )
}

/// `expr` with the variables of `scope` replaced by what they are bound to. An attribute or key
/// of an object literal so put in is looked up (`each.value.queue` is the `queue` entry of
/// `each`'s value), and a template whose interpolations are all bound becomes its string;
/// everything else is left as written.
pub fn substitute(expr: &Expression, scope: &Scope) -> Expression {
    let sub = |e: &Expression| substitute(e, scope);
    match expr {
        Expression::Variable(variable) => scope
            .iter()
            .rev()
            .find(|(name, _)| name == variable.as_str())
            .map_or_else(|| expr.clone(), |(_, value)| value.clone()),
        Expression::Traversal(traversal) => {
            let mut current = sub(&traversal.expr);
            let mut rest = Vec::new();
            for operator in &traversal.operators {
                let operator = match operator {
                    TraversalOperator::Index(index) => TraversalOperator::Index(sub(index)),
                    other => other.clone(),
                };
                let key = match &operator {
                    TraversalOperator::GetAttr(key) => Some(key.to_string()),
                    TraversalOperator::Index(Expression::String(key)) => Some(key.clone()),
                    _ => None,
                };
                let entry = key.filter(|_| rest.is_empty()).and_then(|key| {
                    object_entries(&current)?
                        .get(&key)
                        .map(|entry| (*entry).clone())
                });
                match entry {
                    Some(entry) => current = entry,
                    None => rest.push(operator),
                }
            }
            if rest.is_empty() {
                current
            } else {
                Expression::Traversal(Box::new(Traversal::new(current, rest)))
            }
        }
        Expression::Array(items) => Expression::Array(items.iter().map(sub).collect()),
        Expression::Object(object) => Expression::Object(
            object
                .iter()
                .map(|(key, value)| {
                    let key = match key {
                        ObjectKey::Expression(key) => ObjectKey::Expression(sub(key)),
                        other => other.clone(),
                    };
                    (key, sub(value))
                })
                .collect(),
        ),
        Expression::FuncCall(call) => {
            let mut call = call.clone();
            call.args = call.args.iter().map(sub).collect();
            Expression::FuncCall(call)
        }
        Expression::Parenthesis(inner) => Expression::Parenthesis(Box::new(sub(inner))),
        Expression::Conditional(cond) => {
            let mut cond = cond.clone();
            cond.cond_expr = sub(&cond.cond_expr);
            cond.true_expr = sub(&cond.true_expr);
            cond.false_expr = sub(&cond.false_expr);
            Expression::Conditional(cond)
        }
        Expression::Operation(operation) => {
            let mut operation = operation.clone();
            match &mut *operation {
                Operation::Unary(op) => op.expr = sub(&op.expr),
                Operation::Binary(op) => {
                    op.lhs_expr = sub(&op.lhs_expr);
                    op.rhs_expr = sub(&op.rhs_expr);
                }
            }
            Expression::Operation(operation)
        }
        Expression::TemplateExpr(_) => match render(expr, &scope_values(scope)) {
            Ok(hcl::Value::String(rendered)) => Expression::String(rendered),
            _ => expr.clone(),
        },
        _ => expr.clone(),
    }
}

/// `block` with the variables of `scope` replaced in its attributes and nested blocks.
pub fn substitute_block(block: &Block, scope: &Scope) -> Block {
    let mut block = block.clone();
    for structure in &mut block.body.0 {
        match structure {
            Structure::Attribute(attribute) => attribute.expr = substitute(&attribute.expr, scope),
            Structure::Block(inner) => *inner = substitute_block(inner, scope),
        }
    }
    block
}

/// The bindings of `scope` as values, for [`render`]: their literal parts only (an object keeps
/// the entries that are literals), so that `each.key` evaluates when `each.value` holds
/// references.
pub fn scope_values(scope: &Scope) -> Vec<(&str, hcl::Value)> {
    scope
        .iter()
        .filter_map(|(name, expr)| literal_value(expr).map(|value| (name.as_str(), value)))
        .collect()
}

fn literal_value(expr: &Expression) -> Option<hcl::Value> {
    match expr {
        Expression::Object(_) => Some(hcl::Value::Object(
            object_entries(expr)?
                .into_iter()
                .filter_map(|(key, value)| literal_value(value).map(|value| (key, value)))
                .collect(),
        )),
        Expression::Array(items) => items
            .iter()
            .map(literal_value)
            .collect::<Option<Vec<_>>>()
            .map(hcl::Value::Array),
        Expression::Null | Expression::Bool(_) | Expression::Number(_) | Expression::String(_) => {
            render(expr, &[]).ok()
        }
        _ => None,
    }
}

/// Evaluates an expression that only refers to the given variables (a name template, say:
/// `"${local.name}-${each.key}"` with `local = {name = ...}` and `each = {key = ...}`).
pub fn render(expr: &Expression, vars: &[(&str, hcl::Value)]) -> anyhow::Result<hcl::Value> {
    use hcl::eval::Evaluate as _;
    let mut context = hcl::eval::Context::new();
    for (name, value) in vars {
        context.declare_var(*name, value.clone());
    }
    expr.evaluate(&context)
        .map_err(|err| anyhow::anyhow!("evaluating {expr}: {err}"))
}

/// An HCL object value from string pairs.
pub fn object(pairs: &[(&str, &str)]) -> hcl::Value {
    hcl::Value::Object(
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), hcl::Value::from(*value)))
            .collect(),
    )
}

/// The names Terraform gives a stage's queue and dead-letter queue when `local.name` is
/// `name`, by evaluating the `name` templates of `aws_sqs_queue.stage` and
/// `aws_sqs_queue.dead_letter`.
pub fn terraform_queue_names(
    tf: &Terraform,
    name: &str,
    stage: &str,
) -> anyhow::Result<(String, String)> {
    let vars = [
        ("local", object(&[("name", name)])),
        ("each", object(&[("key", stage)])),
    ];
    let mut names = Vec::new();
    for resource in ["stage", "dead_letter"] {
        let block = tf
            .resource("aws_sqs_queue", resource)
            .with_context(|| format!("no aws_sqs_queue.{resource}"))?;
        let template =
            attr(block, "name").with_context(|| format!("aws_sqs_queue.{resource} has no name"))?;
        match render(template, &vars)? {
            hcl::Value::String(text) => names.push(text),
            other => anyhow::bail!("aws_sqs_queue.{resource} name is not a string: {other:?}"),
        }
    }
    let dlq = names.pop().context("no dead-letter queue name")?;
    let queue = names.pop().context("no queue name")?;
    Ok((queue, dlq))
}

/// A block's labels as strings.
pub fn labels(block: &Block) -> Vec<&str> {
    block.labels().iter().map(|label| label.as_str()).collect()
}

/// An attribute of a block.
pub fn attr<'a>(block: &'a Block, name: &str) -> Option<&'a Expression> {
    block
        .body()
        .attributes()
        .find(|attribute| attribute.key() == name)
        .map(|attribute| attribute.expr())
}

/// Nested blocks of a block with this identifier. A `dynamic "<name>"` block counts, through its
/// `content` block: both describe what the provider receives.
pub fn nested<'a>(block: &'a Block, name: &'a str) -> Vec<&'a Block> {
    let mut found = Vec::new();
    for inner in block.body().blocks() {
        if inner.identifier() == name {
            found.push(inner);
        } else if inner.identifier() == "dynamic" && labels(inner) == [name] {
            found.extend(
                inner
                    .body()
                    .blocks()
                    .filter(|content| content.identifier() == "content"),
            );
        }
    }
    found
}

/// The dotted path of a plain traversal (`local.stages` -> `["local", "stages"]`); `None` when
/// the expression is not a variable followed by attribute names only.
pub fn traversal_path(expr: &Expression) -> Option<Vec<String>> {
    match expr {
        Expression::Variable(variable) => Some(vec![variable.to_string()]),
        Expression::Traversal(traversal) => {
            let mut path = traversal_path(&traversal.expr)?;
            for operator in &traversal.operators {
                match operator {
                    TraversalOperator::GetAttr(name) => path.push(name.to_string()),
                    _ => return None,
                }
            }
            Some(path)
        }
        _ => None,
    }
}

/// The keys of an object expression (`{ a = 1, "b" = 2 }` -> `["a", "b"]`); `None` for any
/// other expression or a computed key.
pub fn object_keys(expr: &Expression) -> Option<Vec<String>> {
    Some(object_entries(expr)?.into_keys().collect())
}

/// The entries of an object expression by key.
pub fn object_entries(expr: &Expression) -> Option<BTreeMap<String, &Expression>> {
    let Expression::Object(object) = expr else {
        return None;
    };
    object
        .iter()
        .map(|(key, value)| {
            let key = match key {
                ObjectKey::Identifier(ident) => ident.to_string(),
                ObjectKey::Expression(Expression::String(text)) => text.clone(),
                _ => return None,
            };
            Some((key, value))
        })
        .collect()
}

/// A list of string literals; `None` if any element is computed.
pub fn string_list(expr: &Expression) -> Option<Vec<String>> {
    let Expression::Array(items) = expr else {
        return None;
    };
    items
        .iter()
        .map(|item| match item {
            Expression::String(text) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// A string literal.
pub fn string(expr: &Expression) -> Option<&str> {
    match expr {
        Expression::String(text) => Some(text),
        _ => None,
    }
}

/// The expression as HCL text (for messages and for matching references).
pub fn text(expr: &Expression) -> String {
    expr.to_string()
}

/// Every `TASCOMI_*` name that appears as a whole string literal (`"TASCOMI_QUEUE_URL"`) in the
/// `src/` folders of the workspace's crates, except `skip` (this crate, whose own literals
/// would otherwise satisfy the check).
pub fn env_names_read_by_sources(root: &Path, skip: &Path) -> anyhow::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for member in workspace_members(root)? {
        let crate_dir = root.join(&member);
        if same_dir(&crate_dir, skip) {
            continue;
        }
        let src = crate_dir.join("src");
        if src.is_dir() {
            scan_rust_files(&src, &mut names)?;
        }
    }
    Ok(names)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The `members` of the workspace's root `Cargo.toml`.
pub fn workspace_members(root: &Path) -> anyhow::Result<Vec<String>> {
    let manifest = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let start = text
        .find("members")
        .with_context(|| format!("no members list in {}", manifest.display()))?;
    let list = &text[start..];
    let open = list.find('[').context("members list has no '['")?;
    let close = list.find(']').context("members list has no ']'")?;
    Ok(list[open + 1..close]
        .split(',')
        .map(|item| item.trim().trim_matches('"').to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}

fn scan_rust_files(dir: &Path, names: &mut BTreeSet<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            scan_rust_files(&path, names)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            names.extend(env_literals(&text));
        }
    }
    Ok(())
}

/// The `"TASCOMI_[A-Z0-9_]+"` string literals of a source text.
pub fn env_literals(text: &str) -> BTreeSet<String> {
    const START: &str = "\"TASCOMI_";
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(START) {
        let after = &rest[at + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        if after[len..].starts_with('"') && len > "TASCOMI_".len() {
            found.insert(after[..len].to_owned());
        }
        rest = &after[len..];
    }
    found
}

/// A YAML file as a value, with `<<` merge keys applied (docker-compose uses them).
pub fn load_yaml(path: &Path) -> anyhow::Result<serde_norway::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut value: serde_norway::Value =
        serde_norway::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    // One pass merges one level: an anchor whose mapping itself merges another (as compose's
    // environment anchors do) needs another pass.
    for _ in 0..8 {
        value
            .apply_merge()
            .with_context(|| format!("merge keys in {}", path.display()))?;
    }
    Ok(value)
}

/// A compose service's `environment`, as a map (both the map and the `NAME=value` list forms).
pub fn compose_environment(service: &serde_norway::Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    match service.get("environment") {
        Some(serde_norway::Value::Mapping(map)) => {
            for (key, value) in map {
                if let Some(key) = key.as_str() {
                    env.insert(key.to_owned(), yaml_scalar(value));
                }
            }
        }
        Some(serde_norway::Value::Sequence(items)) => {
            for item in items.iter().filter_map(|item| item.as_str()) {
                let (key, value) = item.split_once('=').unwrap_or((item, ""));
                env.insert(key.to_owned(), value.to_owned());
            }
        }
        _ => {}
    }
    env
}

fn yaml_scalar(value: &serde_norway::Value) -> String {
    match value {
        serde_norway::Value::String(text) => text.clone(),
        serde_norway::Value::Number(number) => number.to_string(),
        serde_norway::Value::Bool(flag) => flag.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_literals_finds_whole_literals_only() {
        let text =
            r#"env.get("TASCOMI_QUEUE_URL"); "TASCOMI_" ; "TASCOMI_X is set"; x("TASCOMI_A2_B")"#;
        let found: Vec<_> = env_literals(text).into_iter().collect();
        assert_eq!(found, ["TASCOMI_A2_B", "TASCOMI_QUEUE_URL"]);
    }

    #[test]
    fn traversal_path_reads_dotted_references_only() {
        let expr: Expression = "local.stages".parse().unwrap();
        assert_eq!(traversal_path(&expr).unwrap(), ["local", "stages"]);
        let indexed: Expression = "aws_sqs_queue.stage[each.key].arn".parse().unwrap();
        assert!(traversal_path(&indexed).is_none());
    }

    #[test]
    fn nested_sees_dynamic_blocks_through_their_content() {
        let body = hcl::parse(
            r#"data "x" "y" {
                 statement { sid = "a" }
                 dynamic "statement" {
                   for_each = []
                   content { sid = "b" }
                 }
               }"#,
        )
        .unwrap();
        let block = body.blocks().next().unwrap();
        let sids: Vec<_> = nested(block, "statement")
            .into_iter()
            .map(|s| string(attr(s, "sid").unwrap()).unwrap().to_owned())
            .collect();
        assert_eq!(sids, ["a", "b"]);
    }

    fn module(text: &str) -> (tempfile::TempDir, Terraform) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.tf"), text).unwrap();
        let tf = Terraform::load(dir.path()).unwrap();
        (dir, tf)
    }

    #[test]
    fn instances_read_locals_merges_and_for_expressions() {
        let (_dir, tf) = module(
            r#"locals {
                 stages = { a = { next = "b" }, b = { next = null } }
                 per_stage = merge([
                   for stage, def in local.stages : {
                     "${stage}-x" = { next = def.next, queue = aws_sqs_queue.stage[stage].name }
                   }
                 ]...)
                 notified = { for name, n in { p = true, q = false } : name => n if n }
               }"#,
        );
        let per_stage = tf
            .instances(&"local.per_stage".parse().unwrap(), &[])
            .unwrap();
        let texts: Vec<_> = per_stage
            .iter()
            .map(|(key, value)| {
                (
                    key.as_str(),
                    text(value).split_whitespace().collect::<String>(),
                )
            })
            .collect();
        assert_eq!(
            texts,
            [
                (
                    "a-x",
                    r#"{next="b"queue=aws_sqs_queue.stage["a"].name}"#.to_owned()
                ),
                (
                    "b-x",
                    r#"{next=nullqueue=aws_sqs_queue.stage["b"].name}"#.to_owned()
                ),
            ]
        );
        let notified = tf
            .instances(&"local.notified".parse().unwrap(), &[])
            .unwrap();
        assert_eq!(notified.len(), 1, "a decided `if` drops the element");
        assert!(
            tf.instances(&"var.x ? [1] : []".parse().unwrap(), &[])
                .is_none()
        );
    }

    #[test]
    fn expand_binds_each_and_a_dynamic_blocks_iterator() {
        let (_dir, tf) = module(
            r#"locals {
                 statements = { a = [{ sid = "one" }, { sid = "two" }], b = [] }
               }
               data "x" "y" {
                 statement { sid = each.key }
                 dynamic "statement" {
                   for_each = local.statements[each.key]
                   content { sid = statement.value.sid }
                 }
                 dynamic "statement" {
                   for_each = var.maybe == null ? [] : [var.maybe]
                   content { sid = statement.value }
                 }
               }"#,
        );
        let block = tf.data("x", "y").unwrap();
        let sids = |stage: &str| -> Vec<String> {
            let scope = [(
                "each".to_owned(),
                key_value(stage.to_owned(), Expression::Null),
            )];
            tf.expand(block, "statement", &scope)
                .iter()
                .map(|s| text(attr(s, "sid").unwrap()))
                .collect()
        };
        // A for_each that needs a plan gives its content once, as written.
        assert_eq!(
            sids("a"),
            ["\"a\"", "\"one\"", "\"two\"", "statement.value"]
        );
        assert_eq!(sids("b"), ["\"b\"", "statement.value"]);
    }

    #[test]
    fn compose_environment_reads_map_and_list_forms() {
        let map: serde_norway::Value = serde_norway::from_str("environment: {A: x, B: 2}").unwrap();
        let list: serde_norway::Value = serde_norway::from_str("environment: [A=x, B=2]").unwrap();
        assert_eq!(compose_environment(&map), compose_environment(&list));
    }
}
