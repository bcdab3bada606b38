//! Which text-to-speech voice speaks a `talk` action's `language`: BCP-47 tags mapped to the
//! voices of the default offline engine (espeak-ng). The NCCO parser refuses a language with no
//! voice, so a call never discovers it mid-way.

/// espeak-ng's voice names (`espeak-ng --voices`, Debian 12's espeak-ng-data), lowercase.
const VOICES: &[&str] = &[
    "af",
    "am",
    "an",
    "ar",
    "as",
    "az",
    "ba",
    "be",
    "bg",
    "bn",
    "bpy",
    "bs",
    "ca",
    "cmn",
    "cs",
    "cv",
    "cy",
    "da",
    "de",
    "el",
    "en-029",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-us",
    "en-us-nyc",
    "eo",
    "es",
    "es-419",
    "et",
    "eu",
    "fa",
    "fi",
    "fr-be",
    "fr-ch",
    "fr-fr",
    "ga",
    "gd",
    "gn",
    "grc",
    "gu",
    "hak",
    "haw",
    "he",
    "hi",
    "hr",
    "ht",
    "hu",
    "hy",
    "hyw",
    "ia",
    "id",
    "io",
    "is",
    "it",
    "ja",
    "jbo",
    "ka",
    "kk",
    "kl",
    "kn",
    "ko",
    "kok",
    "ku",
    "ky",
    "la",
    "lb",
    "lfn",
    "lt",
    "ltg",
    "lv",
    "mi",
    "mk",
    "ml",
    "mr",
    "ms",
    "mt",
    "my",
    "nb",
    "nci",
    "ne",
    "nl",
    "nog",
    "om",
    "or",
    "pa",
    "pap",
    "pl",
    "pt",
    "pt-br",
    "qu",
    "quc",
    "ro",
    "ru",
    "ru-lv",
    "sd",
    "shn",
    "si",
    "sk",
    "sl",
    "smj",
    "sq",
    "sr",
    "sv",
    "sw",
    "ta",
    "te",
    "th",
    "tk",
    "tn",
    "tr",
    "tt",
    "ug",
    "uk",
    "ur",
    "uz",
    "vi",
    "yue",
];

/// Tags whose voice is not found by the rules below: a region with its own voice name, or a
/// macrolanguage spelled another way.
const ALIASES: &[(&str, &str)] = &[
    ("en", "en-us"),
    ("en-au", "en-gb"),
    ("en-ie", "en-gb"),
    ("en-in", "en-gb"),
    ("en-nz", "en-gb"),
    ("en-za", "en-gb"),
    ("fr", "fr-fr"),
    ("fr-ca", "fr-fr"),
    ("es-mx", "es-419"),
    ("es-us", "es-419"),
    ("zh", "cmn"),
    ("zh-cn", "cmn"),
    ("zh-tw", "cmn"),
    ("zh-hk", "yue"),
    ("no", "nb"),
    ("nb-no", "nb"),
];

/// The voice for `language` (a BCP-47 tag, any case): the tag itself, an alias, else its
/// primary language subtag.
pub fn voice_for(language: &str) -> Option<&'static str> {
    let tag = language.to_ascii_lowercase();
    let known = |t: &str| VOICES.iter().copied().find(|v| *v == t);
    let alias = |t: &str| ALIASES.iter().find(|(k, _)| *k == t).map(|(_, v)| *v);
    let primary = tag.split('-').next().unwrap_or_default();
    known(&tag).or_else(|| alias(&tag)).or_else(|| known(primary)).or_else(|| alias(primary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_map_to_voices() {
        assert_eq!(voice_for("en-US"), Some("en-us"));
        assert_eq!(voice_for("en-GB"), Some("en-gb"));
        assert_eq!(voice_for("en-AU"), Some("en-gb"));
        assert_eq!(voice_for("de-DE"), Some("de"));
        assert_eq!(voice_for("es-MX"), Some("es-419"));
        assert_eq!(voice_for("fr-CA"), Some("fr-fr"));
        assert_eq!(voice_for("zh-CN"), Some("cmn"));
        assert_eq!(voice_for("pt-BR"), Some("pt-br"));
        assert_eq!(voice_for("xx-YY"), None);
        assert_eq!(voice_for("tlh"), None);
    }
}
