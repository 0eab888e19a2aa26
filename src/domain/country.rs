//! Country names as Fortnox sends them, mapped to ISO 3166-1 alpha-2 codes.
//!
//! Fortnox orders have no country code: `Country` and `DeliveryCountry` are free names such
//! as `Sverige`, `Finland` or `Tyskland`, typed by the merchant or copied from a web shop.
//! The warehouse needs an ISO code. We recognise each country we ship to by its English,
//! Swedish and native names (Finnish and German names for the neighbours most merchants
//! trade with), and by its alpha-2 and alpha-3 codes. Matching ignores case, surrounding
//! and repeated whitespace, punctuation such as `U.S.A.`, and diacritics, so `Osterrike`,
//! `Österrike` and `ÖSTERRIKE` are one name.
//!
//! A name we do not know is `None`, never a best guess: shipping a parcel to the wrong
//! country costs more than a RESERVED order with a reason the merchant can fix in a minute.

use std::collections::HashMap;
use std::sync::OnceLock;

/// (alpha-2, alpha-3, names). The names are written naturally; they are normalised the same
/// way as the input when the lookup table is built.
const COUNTRIES: &[(&str, &str, &[&str])] = &[
    // The European Union.
    (
        "AT",
        "AUT",
        &[
            "Austria",
            "Österrike",
            "Österreich",
            "Oesterreich",
            "Itävalta",
        ],
    ),
    (
        "BE",
        "BEL",
        &["Belgium", "Belgien", "België", "Belgique", "Belgia"],
    ),
    ("BG", "BGR", &["Bulgaria", "Bulgarien", "България"]),
    ("HR", "HRV", &["Croatia", "Kroatien", "Hrvatska", "Kroatia"]),
    (
        "CY",
        "CYP",
        &["Cyprus", "Cypern", "Κύπρος", "Kıbrıs", "Kypros", "Zypern"],
    ),
    (
        "CZ",
        "CZE",
        &[
            "Czech Republic",
            "Czechia",
            "Tjeckien",
            "Česko",
            "Česká republika",
            "Tšekki",
            "Tschechien",
        ],
    ),
    (
        "DK",
        "DNK",
        &["Denmark", "Danmark", "Tanska", "Dänemark", "Danmörk"],
    ),
    ("EE", "EST", &["Estonia", "Estland", "Eesti", "Viro"]),
    (
        "FI",
        "FIN",
        &["Finland", "Suomi", "Finnland", "Suomen tasavalta"],
    ),
    (
        "FR",
        "FRA",
        &["France", "Frankrike", "Ranska", "Frankreich"],
    ),
    (
        "DE",
        "DEU",
        &[
            "Germany",
            "Tyskland",
            "Deutschland",
            "Saksa",
            "Allemagne",
            "Þýskaland",
        ],
    ),
    (
        "GR",
        "GRC",
        &[
            "Greece",
            "Grekland",
            "Ελλάδα",
            "Ελλάς",
            "Hellas",
            "Kreikka",
            "Griechenland",
        ],
    ),
    (
        "HU",
        "HUN",
        &["Hungary", "Ungern", "Magyarország", "Unkari", "Ungarn"],
    ),
    (
        "IE",
        "IRL",
        &[
            "Ireland",
            "Irland",
            "Éire",
            "Irlanti",
            "Republic of Ireland",
        ],
    ),
    ("IT", "ITA", &["Italy", "Italien", "Italia"]),
    ("LV", "LVA", &["Latvia", "Lettland", "Latvija"]),
    ("LT", "LTU", &["Lithuania", "Litauen", "Lietuva", "Liettua"]),
    ("LU", "LUX", &["Luxembourg", "Luxemburg", "Lëtzebuerg"]),
    ("MT", "MLT", &["Malta"]),
    (
        "NL",
        "NLD",
        &[
            "Netherlands",
            "The Netherlands",
            "Nederländerna",
            "Nederland",
            "Holland",
            "Alankomaat",
            "Hollanti",
            "Niederlande",
        ],
    ),
    ("PL", "POL", &["Poland", "Polen", "Polska", "Puola"]),
    ("PT", "PRT", &["Portugal", "Portugali"]),
    ("RO", "ROU", &["Romania", "Rumänien", "România"]),
    (
        "SK",
        "SVK",
        &["Slovakia", "Slovakien", "Slovensko", "Slowakei"],
    ),
    (
        "SI",
        "SVN",
        &["Slovenia", "Slovenien", "Slovenija", "Slowenien"],
    ),
    ("ES", "ESP", &["Spain", "Spanien", "España", "Espanja"]),
    (
        "SE",
        "SWE",
        &["Sweden", "Sverige", "Ruotsi", "Schweden", "Svíþjóð"],
    ),
    // The rest of the EEA, the Nordic countries and territories, the UK and Switzerland.
    ("IS", "ISL", &["Iceland", "Island", "Ísland", "Islanti"]),
    ("LI", "LIE", &["Liechtenstein"]),
    (
        "NO",
        "NOR",
        &["Norway", "Norge", "Noreg", "Norja", "Norwegen", "Noregur"],
    ),
    (
        "FO",
        "FRO",
        &[
            "Faroe Islands",
            "Färöarna",
            "Føroyar",
            "Færøerne",
            "Færøyene",
            "Färsaaret",
        ],
    ),
    (
        "GL",
        "GRL",
        &[
            "Greenland",
            "Grönland",
            "Grønland",
            "Kalaallit Nunaat",
            "Grönlanti",
        ],
    ),
    (
        "AX",
        "ALA",
        &["Åland", "Åland Islands", "Ålandsöarna", "Ahvenanmaa"],
    ),
    (
        "GB",
        "GBR",
        &[
            "United Kingdom",
            "UK",
            "Great Britain",
            "Britain",
            "Storbritannien",
            "Storbritannien och Nordirland",
            "Förenade kungariket",
            "England",
            "Scotland",
            "Skottland",
            "Wales",
            "Northern Ireland",
            "Nordirland",
            "Iso-Britannia",
            "Yhdistynyt kuningaskunta",
            "Englanti",
            "Großbritannien",
            "Vereinigtes Königreich",
        ],
    ),
    (
        "CH",
        "CHE",
        &[
            "Switzerland",
            "Schweiz",
            "Suisse",
            "Svizzera",
            "Svizra",
            "Sveitsi",
            "Sveits",
            "Helvetia",
        ],
    ),
    // Other European destinations.
    ("AD", "AND", &["Andorra"]),
    ("MC", "MCO", &["Monaco"]),
    ("SM", "SMR", &["San Marino"]),
    (
        "VA",
        "VAT",
        &[
            "Vatican City",
            "Vatican",
            "Vatikanstaten",
            "Holy See",
            "Città del Vaticano",
        ],
    ),
    ("AL", "ALB", &["Albania", "Albanien", "Shqipëria"]),
    (
        "BA",
        "BIH",
        &[
            "Bosnia and Herzegovina",
            "Bosnia",
            "Bosnien och Hercegovina",
            "Bosnien-Hercegovina",
            "Bosna i Hercegovina",
        ],
    ),
    ("ME", "MNE", &["Montenegro", "Crna Gora"]),
    (
        "MK",
        "MKD",
        &[
            "North Macedonia",
            "Nordmakedonien",
            "Macedonia",
            "Makedonien",
            "Северна Македонија",
        ],
    ),
    ("RS", "SRB", &["Serbia", "Serbien", "Srbija", "Србија"]),
    ("UA", "UKR", &["Ukraine", "Ukraina", "Україна"]),
    (
        "TR",
        "TUR",
        &["Turkey", "Türkiye", "Turkiet", "Turkki", "Türkei"],
    ),
    // Frequent destinations further away.
    (
        "US",
        "USA",
        &[
            "United States",
            "United States of America",
            "US",
            "USA",
            "Förenta staterna",
            "Amerikas förenta stater",
            "Yhdysvallat",
            "Vereinigte Staaten",
        ],
    ),
    ("CA", "CAN", &["Canada", "Kanada"]),
    ("AU", "AUS", &["Australia", "Australien"]),
    (
        "NZ",
        "NZL",
        &["New Zealand", "Nya Zeeland", "Uusi-Seelanti", "Neuseeland"],
    ),
    ("JP", "JPN", &["Japan", "Japani", "日本"]),
    ("CN", "CHN", &["China", "Kina", "Kiina", "中国"]),
];

/// The ISO 3166-1 alpha-2 code (upper case) of a country name or code, or `None` when the
/// name is not one we know.
pub fn country_code(name: &str) -> Option<&'static str> {
    let key = normalize(name);
    if key.is_empty() {
        return None;
    }
    lookup_table().get(&key).copied()
}

fn lookup_table() -> &'static HashMap<String, &'static str> {
    static TABLE: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = HashMap::new();
        for (alpha2, alpha3, names) in COUNTRIES {
            for spelling in [*alpha2, *alpha3].iter().chain(names.iter()) {
                table.insert(normalize(spelling), *alpha2);
            }
        }
        table
    })
}

/// The comparison form of a name: lower case, without diacritics, with punctuation that
/// separates words turned into single spaces and dots and apostrophes dropped.
fn normalize(name: &str) -> String {
    let mut folded = String::with_capacity(name.len());
    for c in name.chars() {
        for lower in c.to_lowercase() {
            match lower {
                '.' | '\'' | '’' => {}
                '-' | '_' | ',' | '/' | '(' | ')' => folded.push(' '),
                _ if is_combining_mark(lower) => {}
                _ => match without_diacritic(lower) {
                    Some(plain) => folded.push_str(plain),
                    None => folded.push(lower),
                },
            }
        }
    }
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Combining diacritical marks: names typed on some systems arrive decomposed (`O` followed
/// by a combining diaeresis instead of `Ö`); dropping the marks makes both forms one.
fn is_combining_mark(c: char) -> bool {
    ('\u{0300}'..='\u{036F}').contains(&c)
}

/// The plain letters of precomposed lower-case letters with diacritics (Latin and Greek),
/// so that `Osterrike` finds `Österrike`.
fn without_diacritic(c: char) -> Option<&'static str> {
    let plain = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĵ' => "j",
        'ķ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => "s",
        'ß' => "ss",
        'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'ά' => "α",
        'έ' => "ε",
        'ή' => "η",
        'ί' | 'ϊ' | 'ΐ' => "ι",
        'ό' => "ο",
        'ύ' | 'ϋ' | 'ΰ' => "υ",
        'ώ' => "ω",
        // The final form of sigma is the same letter.
        'ς' => "σ",
        _ => return None,
    };
    Some(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_fortnox_sends() {
        for (name, code) in [
            ("Sverige", "SE"),
            ("Suomi", "FI"),
            ("Finland", "FI"),
            ("Tyskland", "DE"),
            ("Deutschland", "DE"),
            ("Germany", "DE"),
            ("Norge", "NO"),
            ("Danmark", "DK"),
            ("Storbritannien", "GB"),
            ("Nederländerna", "NL"),
            ("Österrike", "AT"),
            ("Schweiz", "CH"),
            ("Island", "IS"),
            ("Irland", "IE"),
            ("USA", "US"),
        ] {
            assert_eq!(country_code(name), Some(code), "{name}");
        }
    }

    #[test]
    fn iso_codes_map_to_themselves_in_any_case() {
        assert_eq!(country_code("SE"), Some("SE"));
        assert_eq!(country_code("fi"), Some("FI"));
        assert_eq!(country_code("Gb"), Some("GB"));
        assert_eq!(country_code("SWE"), Some("SE"), "alpha-3 too");
        assert_eq!(country_code("deu"), Some("DE"));
    }

    #[test]
    fn case_and_whitespace_do_not_matter() {
        assert_eq!(country_code("  sverige "), Some("SE"));
        assert_eq!(country_code("SVERIGE"), Some("SE"));
        assert_eq!(country_code("united   kingdom"), Some("GB"));
        assert_eq!(country_code("\tNorge\n"), Some("NO"));
    }

    #[test]
    fn diacritics_are_optional() {
        assert_eq!(country_code("Osterrike"), Some("AT"));
        assert_eq!(country_code("ÖSTERRIKE"), Some("AT"));
        assert_eq!(country_code("Osterreich"), Some("AT"));
        assert_eq!(country_code("Nederlanderna"), Some("NL"));
        assert_eq!(country_code("Rumanien"), Some("RO"));
        assert_eq!(country_code("Cesko"), Some("CZ"));
        assert_eq!(country_code("Aland"), Some("AX"));
        assert_eq!(country_code("Faroarna"), Some("FO"));
        assert_eq!(country_code("Magyarorszag"), Some("HU"));
        assert_eq!(country_code("Ελλαδα"), Some("GR"));
        assert_eq!(
            country_code("ΚΥΠΡΟΣ"),
            Some("CY"),
            "upper-case Greek with final sigma"
        );
    }

    #[test]
    fn decomposed_diacritics_are_the_same_name() {
        // "O" + COMBINING DIAERESIS, as some systems send "Ö".
        assert_eq!(country_code("O\u{0308}sterrike"), Some("AT"));
        assert_eq!(country_code("A\u{030A}land"), Some("AX"));
    }

    #[test]
    fn punctuation_and_hyphens_are_tolerated() {
        assert_eq!(country_code("U.S.A."), Some("US"));
        assert_eq!(country_code("U.K."), Some("GB"));
        assert_eq!(country_code("Iso-Britannia"), Some("GB"));
        assert_eq!(country_code("Iso Britannia"), Some("GB"));
        assert_eq!(country_code("Bosnien-Hercegovina"), Some("BA"));
    }

    #[test]
    fn finnish_names_of_the_nordics() {
        for (name, code) in [
            ("Ruotsi", "SE"),
            ("Suomi", "FI"),
            ("Norja", "NO"),
            ("Tanska", "DK"),
            ("Islanti", "IS"),
            ("Ahvenanmaa", "AX"),
            ("Färsaaret", "FO"),
            ("Grönlanti", "GL"),
        ] {
            assert_eq!(country_code(name), Some(code), "{name}");
        }
    }

    #[test]
    fn every_eu_eea_nordic_uk_and_swiss_country_by_english_swedish_and_native_name() {
        let expected: &[(&str, [&str; 3])] = &[
            ("AT", ["Austria", "Österrike", "Österreich"]),
            ("BE", ["Belgium", "Belgien", "België"]),
            ("BG", ["Bulgaria", "Bulgarien", "България"]),
            ("HR", ["Croatia", "Kroatien", "Hrvatska"]),
            ("CY", ["Cyprus", "Cypern", "Κύπρος"]),
            ("CZ", ["Czech Republic", "Tjeckien", "Česko"]),
            ("DK", ["Denmark", "Danmark", "Danmark"]),
            ("EE", ["Estonia", "Estland", "Eesti"]),
            ("FI", ["Finland", "Finland", "Suomi"]),
            ("FR", ["France", "Frankrike", "France"]),
            ("DE", ["Germany", "Tyskland", "Deutschland"]),
            ("GR", ["Greece", "Grekland", "Ελλάδα"]),
            ("HU", ["Hungary", "Ungern", "Magyarország"]),
            ("IE", ["Ireland", "Irland", "Éire"]),
            ("IT", ["Italy", "Italien", "Italia"]),
            ("LV", ["Latvia", "Lettland", "Latvija"]),
            ("LT", ["Lithuania", "Litauen", "Lietuva"]),
            ("LU", ["Luxembourg", "Luxemburg", "Lëtzebuerg"]),
            ("MT", ["Malta", "Malta", "Malta"]),
            ("NL", ["Netherlands", "Nederländerna", "Nederland"]),
            ("PL", ["Poland", "Polen", "Polska"]),
            ("PT", ["Portugal", "Portugal", "Portugal"]),
            ("RO", ["Romania", "Rumänien", "România"]),
            ("SK", ["Slovakia", "Slovakien", "Slovensko"]),
            ("SI", ["Slovenia", "Slovenien", "Slovenija"]),
            ("ES", ["Spain", "Spanien", "España"]),
            ("SE", ["Sweden", "Sverige", "Sverige"]),
            ("IS", ["Iceland", "Island", "Ísland"]),
            ("LI", ["Liechtenstein", "Liechtenstein", "Liechtenstein"]),
            ("NO", ["Norway", "Norge", "Noreg"]),
            ("FO", ["Faroe Islands", "Färöarna", "Føroyar"]),
            ("GL", ["Greenland", "Grönland", "Kalaallit Nunaat"]),
            ("AX", ["Åland Islands", "Åland", "Åland"]),
            ("GB", ["United Kingdom", "Storbritannien", "Great Britain"]),
            ("CH", ["Switzerland", "Schweiz", "Svizzera"]),
        ];
        for (code, names) in expected {
            for name in names {
                assert_eq!(country_code(name), Some(*code), "{name}");
            }
            assert_eq!(country_code(code), Some(*code), "the code {code} itself");
        }
    }

    #[test]
    fn unknown_names_are_none_never_a_guess() {
        for name in [
            "Atlantis",
            "",
            "   ",
            "Sverig",
            "Swe den",
            "Europe",
            "Nordic",
            "XX",
            "S",
            "Sverige Finland",
        ] {
            assert_eq!(country_code(name), None, "{name:?}");
        }
    }

    #[test]
    fn no_spelling_means_two_countries() {
        let mut seen: HashMap<String, &str> = HashMap::new();
        for (alpha2, alpha3, names) in COUNTRIES {
            assert_eq!(alpha2.len(), 2, "{alpha2}");
            assert_eq!(alpha3.len(), 3, "{alpha3}");
            for spelling in [*alpha2, *alpha3].iter().chain(names.iter()) {
                let key = normalize(spelling);
                assert!(!key.is_empty(), "{spelling}");
                if let Some(other) = seen.insert(key.clone(), alpha2) {
                    assert_eq!(
                        other, *alpha2,
                        "{spelling:?} ({key}) names both {other} and {alpha2}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_code_is_listed_once() {
        let mut codes: Vec<&str> = COUNTRIES.iter().map(|(alpha2, _, _)| *alpha2).collect();
        let count = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), count);
    }
}
