//! A waybill (ТТН) as an employee sets it: a carrier and a number in that carrier's
//! format, parsed once where the request enters (ARCHITECTURE.md, 'Waybills reach Prom').
//! Nova Poshta numbers are exactly 14 digits; Ukrposhta's and Meest's are 8–20 Latin
//! letters or digits (Ukrposhta mixes letters and digits in its international ones).
//! Anything else is refused with the field it is wrong in, before anything is stored.

use std::fmt;

use super::Carrier;

/// A waybill number valid for its carrier. Built only by [`Waybill::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaybillNumber(String);

impl WaybillNumber {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WaybillNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A carrier and a number that fits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waybill {
    pub number: WaybillNumber,
    pub carrier: Carrier,
}

/// Why a waybill was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaybillError {
    #[error("carrier: {0}")]
    Carrier(String),
    #[error("number: {0}")]
    Number(String),
    #[error("{0}")]
    Body(String),
}

/// Nova Poshta's numbers: exactly this many digits.
const NOVA_POSHTA_DIGITS: usize = 14;
/// Other carriers' numbers: this many Latin letters or digits.
const OTHER_LEN: std::ops::RangeInclusive<usize> = 8..=20;

impl Waybill {
    /// Parses a number and a carrier as a request spells them. The number is kept exactly
    /// as given: a blank or any other character is refused, not cleaned up, so what Prom
    /// and the pages show is what the employee sent.
    pub fn parse(number: &str, carrier: &str) -> Result<Self, WaybillError> {
        let carrier: Carrier = carrier
            .parse()
            .map_err(|e: super::UnknownValue| WaybillError::Carrier(e.to_string()))?;
        let valid = match carrier {
            Carrier::NovaPoshta => {
                number.len() == NOVA_POSHTA_DIGITS && number.bytes().all(|b| b.is_ascii_digit())
            }
            Carrier::Ukrposhta | Carrier::Meest => {
                OTHER_LEN.contains(&number.len())
                    && number.bytes().all(|b| b.is_ascii_alphanumeric())
            }
        };
        if !valid {
            return Err(WaybillError::Number(match carrier {
                Carrier::NovaPoshta => {
                    format!("a Nova Poshta waybill is exactly {NOVA_POSHTA_DIGITS} digits")
                }
                other => format!(
                    "a {other} waybill is {} to {} Latin letters or digits",
                    OTHER_LEN.start(),
                    OTHER_LEN.end()
                ),
            }));
        }
        Ok(Waybill {
            number: WaybillNumber(number.to_owned()),
            carrier,
        })
    }
}

/// The fields of a waybill request body (`{"number", "carrier"}`).
const FIELDS: [&str; 2] = ["number", "carrier"];

impl TryFrom<&serde_json::Value> for Waybill {
    type Error = WaybillError;

    /// A request body: an object with exactly `number` and `carrier`, both strings.
    fn try_from(body: &serde_json::Value) -> Result<Self, WaybillError> {
        let Some(object) = body.as_object() else {
            return Err(WaybillError::Body(
                "expected a JSON object with number and carrier".into(),
            ));
        };
        if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(WaybillError::Body(format!(
                "unknown field `{}`: expected number and carrier",
                super::excerpt(unknown, 40)
            )));
        }
        let text = |field: &str, wrong: fn(String) -> WaybillError| match object.get(field) {
            Some(serde_json::Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(wrong("must be a string".into())),
            None => Err(wrong("is required".into())),
        };
        let number = text("number", WaybillError::Number)?;
        let carrier = text("carrier", WaybillError::Carrier)?;
        Waybill::parse(number, carrier)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn whatever_is_accepted_fits_its_carrier_and_parses_again_unchanged(
                number in "\\PC{0,30}",
                carrier in "(nova_poshta|ukrposhta|meest|\\PC{0,12})",
            ) {
                if let Ok(waybill) = Waybill::parse(&number, &carrier) {
                    let kept = waybill.number.as_str();
                    prop_assert_eq!(kept, number.as_str());
                    prop_assert!(kept.bytes().all(|b| b.is_ascii_alphanumeric()));
                    match waybill.carrier {
                        Carrier::NovaPoshta => prop_assert_eq!(kept.len(), 14),
                        _ => prop_assert!((8..=20).contains(&kept.len())),
                    }
                    prop_assert_eq!(Waybill::parse(kept, waybill.carrier.as_str()), Ok(waybill.clone()));
                }
            }

            #[test]
            fn fourteen_digits_are_always_a_nova_poshta_waybill(number in "[0-9]{14}") {
                prop_assert!(Waybill::parse(&number, "nova_poshta").is_ok());
            }
        }
    }

    #[test]
    fn a_request_body_names_the_field_it_is_wrong_in() {
        let ok = Waybill::try_from(&json!({"number": "20450000000001", "carrier": "nova_poshta"}));
        assert_eq!(ok.unwrap().carrier, Carrier::NovaPoshta);
        let cases = [
            (json!({"carrier": "meest"}), "number: is required"),
            (
                json!({"number": 20450000000001_i64, "carrier": "nova_poshta"}),
                "number: must be a string",
            ),
            (json!({"number": "20450000000001"}), "carrier: is required"),
            (
                json!({"number": "20450000000001", "carrier": null}),
                "carrier: must be a string",
            ),
            (
                json!({"number": "20450000000001", "carrier": "nova_poshta", "x": 1}),
                "unknown field `x`",
            ),
            (json!(["20450000000001"]), "expected a JSON object"),
        ];
        for (body, message) in cases {
            let err = Waybill::try_from(&body).unwrap_err().to_string();
            assert!(err.contains(message), "{body}: {err}");
        }
    }

    #[test]
    fn a_nova_poshta_waybill_is_exactly_fourteen_digits() {
        let ok = Waybill::parse("20450000000001", "nova_poshta").unwrap();
        assert_eq!(ok.number.as_str(), "20450000000001");
        assert_eq!(ok.carrier, Carrier::NovaPoshta);
        for bad in [
            "2045000000000",
            "204500000000012",
            "2045000000000A",
            " 20450000000001",
            "20450000000001\n",
            "",
            "２０４５",
        ] {
            assert!(
                matches!(
                    Waybill::parse(bad, "nova_poshta"),
                    Err(WaybillError::Number(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn other_carriers_take_eight_to_twenty_latin_letters_or_digits() {
        let ok = Waybill::parse("RR123456789ua", "ukrposhta").unwrap();
        assert_eq!(ok.number.as_str(), "RR123456789ua");
        assert!(Waybill::parse("12345678", "meest").is_ok());
        assert!(Waybill::parse(&"9".repeat(20), "meest").is_ok());
        let too_long = "9".repeat(21);
        for bad in [
            "1234567",
            too_long.as_str(),
            "RR 12345678",
            "ЕН12345678",
            "12345678-9",
        ] {
            assert!(
                matches!(
                    Waybill::parse(bad, "ukrposhta"),
                    Err(WaybillError::Number(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_unknown_carrier_is_refused_naming_the_field() {
        let err = Waybill::parse("20450000000001", "justin").unwrap_err();
        assert!(matches!(err, WaybillError::Carrier(_)));
        assert!(err.to_string().starts_with("carrier: "), "{err}");
        let err = Waybill::parse("1", "nova_poshta").unwrap_err();
        assert!(err.to_string().starts_with("number: "), "{err}");
    }
}
