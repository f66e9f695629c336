//! Configuration the council owns, read at start-up from a local file or an S3 object: the
//! column-type dictionary. A new dictionary is a new object (or file) and a restart, never a new
//! image.

use std::fmt;
use std::path::{Path, PathBuf};

use aws_config::SdkConfig;
use bytes::Bytes;

use super::{ConfigError, Env, PipelineFile};
use crate::dictionary::ColumnTypes;
use crate::storage::{S3Storage, Storage, StorageError, split_s3_uri};

/// The variable naming the column-type dictionary: a path or `s3://bucket/key`.
pub const COLUMN_TYPE_DICTIONARY_VARIABLE: &str = "TASCOMI_COLUMN_TYPE_DICTIONARY";

/// Where a configuration file is: a local path or an S3 object (`s3://bucket/key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigLocation {
    File(PathBuf),
    S3 { bucket: String, key: String },
}

impl ConfigLocation {
    /// `s3://bucket/key` is an S3 object (bucket and key both required); anything else a path.
    pub fn parse(value: &str) -> Result<Self, String> {
        if !value.starts_with("s3://") {
            return Ok(Self::File(PathBuf::from(value)));
        }
        match split_s3_uri(value) {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() && !key.ends_with('/') => {
                Ok(Self::S3 {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                })
            }
            _ => Err(format!(
                "{value:?} is not an S3 object URI: expected s3://bucket/key"
            )),
        }
    }

    /// A relative path taken from `base` (the folder of the file that named it); an absolute path
    /// or an S3 object unchanged.
    pub fn relative_to(self, base: &Path) -> Self {
        match self {
            Self::File(path) if path.is_relative() => Self::File(base.join(path)),
            other => other,
        }
    }

    /// The whole file or object. `sdk` is the services' shared AWS configuration; without one,
    /// an S3 object is read with the configuration of the environment (the operator CLI).
    /// `setting` (the variable or pipeline key that named it) is in every error.
    pub async fn read(&self, setting: &str, sdk: Option<&SdkConfig>) -> Result<Bytes, ConfigError> {
        let unreadable = |message: String| ConfigError::Unreadable {
            setting: setting.to_owned(),
            location: self.to_string(),
            message,
        };
        match self {
            Self::File(path) => tokio::fs::read(path)
                .await
                .map(Bytes::from)
                .map_err(|err| unreadable(err.to_string())),
            Self::S3 { bucket, key } => {
                let storage = match sdk {
                    Some(sdk) => S3Storage::new(sdk),
                    None => S3Storage::new(&crate::aws::load_sdk_config().await),
                };
                storage.get(bucket, key).await.map_err(|err| match err {
                    StorageError::NotFound { .. } => unreadable("no such object".to_owned()),
                    other => unreadable(other.to_string()),
                })
            }
        }
    }
}

impl From<PathBuf> for ConfigLocation {
    fn from(path: PathBuf) -> Self {
        Self::File(path)
    }
}

impl fmt::Display for ConfigLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

/// Written as the text it was read from (a path or `s3://bucket/key`), e.g. into a pipeline file.
impl serde::Serialize for ConfigLocation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ConfigLocation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The column-type dictionary's location and the setting that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DictionarySource {
    pub location: ConfigLocation,
    /// `TASCOMI_COLUMN_TYPE_DICTIONARY`, or the pipeline file's `column_type_dictionary`.
    pub setting: String,
}

impl DictionarySource {
    /// `variable` (the value of `TASCOMI_COLUMN_TYPE_DICTIONARY`, or the operator CLI's
    /// `--dictionary`) if given, else the pipeline file's `column_type_dictionary`; `None` when
    /// neither names one.
    pub fn resolve(
        variable: Option<&str>,
        pipeline: &PipelineFile,
    ) -> Result<Option<Self>, ConfigError> {
        if let Some(value) = variable.filter(|v| !v.is_empty()) {
            let location = ConfigLocation::parse(value).map_err(|reason| ConfigError::Invalid {
                variable: COLUMN_TYPE_DICTIONARY_VARIABLE.to_owned(),
                value: value.to_owned(),
                reason,
            })?;
            return Ok(Some(Self {
                location,
                setting: COLUMN_TYPE_DICTIONARY_VARIABLE.to_owned(),
            }));
        }
        Ok(pipeline
            .column_type_dictionary
            .clone()
            .map(|location| Self {
                location,
                setting: "the pipeline file's column_type_dictionary".to_owned(),
            }))
    }

    /// The services' dictionary: [`Self::resolve`] from the environment; neither setting is an
    /// error naming both (a recast without a dictionary would type nothing).
    pub fn from_env(env: &Env, pipeline: &PipelineFile) -> Result<Self, ConfigError> {
        Self::resolve(env.get(COLUMN_TYPE_DICTIONARY_VARIABLE), pipeline)?.ok_or(
            ConfigError::NoDictionary {
                variable: COLUMN_TYPE_DICTIONARY_VARIABLE,
            },
        )
    }

    /// Reads and parses the dictionary (once, at start-up). Errors name the setting and the
    /// path or URI.
    pub async fn load(&self, sdk: Option<&SdkConfig>) -> anyhow::Result<ColumnTypes> {
        let bytes = self.location.read(&self.setting, sdk).await?;
        let text = std::str::from_utf8(&bytes).map_err(|err| ConfigError::Unreadable {
            setting: self.setting.clone(),
            location: self.location.to_string(),
            message: format!("not UTF-8 text: {err}"),
        })?;
        Ok(ColumnTypes::parse(text, &self.location.to_string())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris_and_paths() {
        assert_eq!(
            ConfigLocation::parse("s3://config-bucket/tascomi/dictionary.json").unwrap(),
            ConfigLocation::S3 {
                bucket: "config-bucket".into(),
                key: "tascomi/dictionary.json".into()
            }
        );
        assert_eq!(
            ConfigLocation::parse("conf/dictionary.json").unwrap(),
            ConfigLocation::File("conf/dictionary.json".into())
        );
        for bad in [
            "s3://",
            "s3://bucket",
            "s3://bucket/",
            "s3:///key",
            "s3://b/folder/",
        ] {
            let err = ConfigLocation::parse(bad).unwrap_err();
            assert!(err.contains("s3://bucket/key"), "{bad}: {err}");
        }
        let uri = "s3://b/k.json";
        assert_eq!(ConfigLocation::parse(uri).unwrap().to_string(), uri);
        assert_eq!(
            ConfigLocation::parse(uri)
                .unwrap()
                .relative_to(Path::new("/etc"))
                .to_string(),
            uri
        );
        assert_eq!(
            ConfigLocation::parse("d.json")
                .unwrap()
                .relative_to(Path::new("/etc/tascomi")),
            ConfigLocation::File("/etc/tascomi/d.json".into())
        );
    }

    #[test]
    fn the_variable_wins_over_the_pipeline_file_and_neither_is_an_error_naming_both() {
        let pipeline =
            PipelineFile::parse("column_type_dictionary: from-file.json\ntables: {}\n", "p")
                .unwrap();
        let env = Env::from_pairs([(COLUMN_TYPE_DICTIONARY_VARIABLE, "s3://cfg/d.json")]);
        let source = DictionarySource::from_env(&env, &pipeline).unwrap();
        assert_eq!(source.location.to_string(), "s3://cfg/d.json");
        assert_eq!(source.setting, COLUMN_TYPE_DICTIONARY_VARIABLE);
        let source = DictionarySource::from_env(&Env::default(), &pipeline).unwrap();
        assert_eq!(
            source.location,
            ConfigLocation::File("from-file.json".into())
        );
        assert!(source.setting.contains("column_type_dictionary"));

        let bare = PipelineFile::parse("tables: {}\n", "p").unwrap();
        let err = DictionarySource::from_env(&Env::default(), &bare)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(COLUMN_TYPE_DICTIONARY_VARIABLE) && err.contains("column_type_dictionary"),
            "{err}"
        );
        let env = Env::from_pairs([(COLUMN_TYPE_DICTIONARY_VARIABLE, "s3://cfg")]);
        let err = DictionarySource::from_env(&env, &bare)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TASCOMI_COLUMN_TYPE_DICTIONARY=\"s3://cfg\""),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_missing_or_malformed_file_is_an_error_naming_setting_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nowhere.json");
        let source = DictionarySource {
            location: ConfigLocation::File(missing.clone()),
            setting: COLUMN_TYPE_DICTIONARY_VARIABLE.into(),
        };
        let err = source.load(None).await.unwrap_err().to_string();
        assert!(
            err.contains(&missing.display().to_string())
                && err.contains(COLUMN_TYPE_DICTIONARY_VARIABLE),
            "{err}"
        );
        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, "{ not json").unwrap();
        let source = DictionarySource {
            location: ConfigLocation::File(broken.clone()),
            ..source
        };
        let err = source.load(None).await.unwrap_err().to_string();
        assert!(err.contains(&broken.display().to_string()), "{err}");
        let good = dir.path().join("good.json");
        std::fs::write(&good, r#"[{"integer": {"appeals": ["id"]}}]"#).unwrap();
        let source = DictionarySource {
            location: ConfigLocation::File(good),
            ..source
        };
        let types = source.load(None).await.unwrap();
        assert!(types.has_table("appeals"));
    }
}
