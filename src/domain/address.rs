//! The delivery address of an order (docs/rules.md rule 4).
//!
//! A Fortnox order carries two addresses: the customer's (`CustomerName`, `Address1`, ...)
//! and an optional delivery address (`DeliveryName`, `DeliveryAddress1`, ...). As the
//! original guide says, `DeliveryName` decides: when it is filled in, the Delivery* fields
//! are the address, all of them; otherwise the customer fields are. We never mix the two
//! field by field: a delivery street with the customer's zip code would ship the parcel to
//! an address that does not exist, so a gap in the chosen set is reported instead.

use serde::{Deserialize, Serialize};

use super::country::country_code;

/// The address fields of a Fortnox order, as Fortnox names them. The serde names are
/// Fortnox's own, so this struct deserializes straight from an order's JSON (other keys
/// are ignored, `null` and missing keys are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OrderAddressFields {
    pub customer_name: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub zip_code: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub delivery_name: Option<String>,
    pub delivery_address1: Option<String>,
    pub delivery_address2: Option<String>,
    pub delivery_zip_code: Option<String>,
    pub delivery_city: Option<String>,
    pub delivery_country: Option<String>,
}

/// The address we ship to. It is stored as JSON and read back by key, so the field names
/// are part of a contract: do not rename them. Every text is trimmed; an empty one is
/// `None`. `country_code` is the ISO 3166-1 alpha-2 code of `country`, `None` when the
/// country is missing or unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAddress {
    pub name: Option<String>,
    pub street: Option<String>,
    pub street2: Option<String>,
    pub zip_code: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub country_code: Option<String>,
}

/// Which set of Fortnox fields the address was taken from; it tells the merchant which
/// field to fill in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSource {
    /// `DeliveryName` is filled in: the Delivery* fields.
    DeliveryFields,
    /// `DeliveryName` is empty: the customer fields.
    CustomerFields,
}

/// One part of a delivery address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressField {
    Name,
    Street,
    Street2,
    ZipCode,
    City,
    Country,
}

impl AddressField {
    /// The fields a parcel cannot be shipped without, in the order they are reported.
    pub const REQUIRED: [AddressField; 5] = [
        Self::Name,
        Self::Street,
        Self::ZipCode,
        Self::City,
        Self::Country,
    ];

    /// How the field is called in a sentence for a merchant.
    pub fn label(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Street => "street address",
            Self::Street2 => "second address line",
            Self::ZipCode => "zip code",
            Self::City => "city",
            Self::Country => "country",
        }
    }
}

impl AddressSource {
    /// The Fortnox order field that holds `field` for this source.
    pub fn fortnox_field(self, field: AddressField) -> &'static str {
        match (self, field) {
            (Self::DeliveryFields, AddressField::Name) => "DeliveryName",
            (Self::DeliveryFields, AddressField::Street) => "DeliveryAddress1",
            (Self::DeliveryFields, AddressField::Street2) => "DeliveryAddress2",
            (Self::DeliveryFields, AddressField::ZipCode) => "DeliveryZipCode",
            (Self::DeliveryFields, AddressField::City) => "DeliveryCity",
            (Self::DeliveryFields, AddressField::Country) => "DeliveryCountry",
            (Self::CustomerFields, AddressField::Name) => "CustomerName",
            (Self::CustomerFields, AddressField::Street) => "Address1",
            (Self::CustomerFields, AddressField::Street2) => "Address2",
            (Self::CustomerFields, AddressField::ZipCode) => "ZipCode",
            (Self::CustomerFields, AddressField::City) => "City",
            (Self::CustomerFields, AddressField::Country) => "Country",
        }
    }
}

/// Rule 4: the Delivery* fields when `DeliveryName` is non-empty after trimming, otherwise
/// the customer fields.
pub fn address_source(fields: &OrderAddressFields) -> AddressSource {
    if non_empty(&fields.delivery_name).is_some() {
        AddressSource::DeliveryFields
    } else {
        AddressSource::CustomerFields
    }
}

/// The address to ship to, taken from the fields rule 4 chooses.
pub fn delivery_address(fields: &OrderAddressFields) -> DeliveryAddress {
    let chosen = match address_source(fields) {
        AddressSource::DeliveryFields => [
            &fields.delivery_name,
            &fields.delivery_address1,
            &fields.delivery_address2,
            &fields.delivery_zip_code,
            &fields.delivery_city,
            &fields.delivery_country,
        ],
        AddressSource::CustomerFields => [
            &fields.customer_name,
            &fields.address1,
            &fields.address2,
            &fields.zip_code,
            &fields.city,
            &fields.country,
        ],
    };
    let [name, street, street2, zip_code, city, country] = chosen.map(non_empty);
    let country_code = country.as_deref().and_then(country_code).map(str::to_owned);
    DeliveryAddress {
        name,
        street,
        street2,
        zip_code,
        city,
        country,
        country_code,
    }
}

impl DeliveryAddress {
    /// The required fields that are empty, in [`AddressField::REQUIRED`] order. A country
    /// that is present but cannot be mapped is not "missing": see `country_code`.
    pub fn missing_required_fields(&self) -> Vec<AddressField> {
        AddressField::REQUIRED
            .into_iter()
            .filter(|field| self.value(*field).is_none())
            .collect()
    }

    pub fn value(&self, field: AddressField) -> Option<&str> {
        match field {
            AddressField::Name => self.name.as_deref(),
            AddressField::Street => self.street.as_deref(),
            AddressField::Street2 => self.street2.as_deref(),
            AddressField::ZipCode => self.zip_code.as_deref(),
            AddressField::City => self.city.as_deref(),
            AddressField::Country => self.country.as_deref(),
        }
    }
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    fn customer_only() -> OrderAddressFields {
        OrderAddressFields {
            customer_name: some("Anna Andersson"),
            address1: some("Storgatan 1"),
            address2: some("Lgh 1101"),
            zip_code: some("111 22"),
            city: some("Stockholm"),
            country: some("Sverige"),
            ..OrderAddressFields::default()
        }
    }

    fn with_delivery() -> OrderAddressFields {
        OrderAddressFields {
            delivery_name: some("Bertil Berg"),
            delivery_address1: some("Hämeenkatu 5"),
            delivery_address2: None,
            delivery_zip_code: some("33100"),
            delivery_city: some("Tampere"),
            delivery_country: some("Suomi"),
            ..customer_only()
        }
    }

    #[test]
    fn without_a_delivery_name_the_customer_fields_are_used() {
        let fields = customer_only();
        assert_eq!(address_source(&fields), AddressSource::CustomerFields);
        assert_eq!(
            delivery_address(&fields),
            DeliveryAddress {
                name: some("Anna Andersson"),
                street: some("Storgatan 1"),
                street2: some("Lgh 1101"),
                zip_code: some("111 22"),
                city: some("Stockholm"),
                country: some("Sverige"),
                country_code: some("SE"),
            }
        );
    }

    #[test]
    fn with_a_delivery_name_the_delivery_fields_are_used() {
        let fields = with_delivery();
        assert_eq!(address_source(&fields), AddressSource::DeliveryFields);
        assert_eq!(
            delivery_address(&fields),
            DeliveryAddress {
                name: some("Bertil Berg"),
                street: some("Hämeenkatu 5"),
                street2: None,
                zip_code: some("33100"),
                city: some("Tampere"),
                country: some("Suomi"),
                country_code: some("FI"),
            }
        );
    }

    #[test]
    fn a_blank_delivery_name_counts_as_empty() {
        for blank in [None, some(""), some("   "), some("\t")] {
            let fields = OrderAddressFields {
                delivery_name: blank.clone(),
                ..with_delivery()
            };
            assert_eq!(
                address_source(&fields),
                AddressSource::CustomerFields,
                "{blank:?}"
            );
            assert_eq!(delivery_address(&fields).name, some("Anna Andersson"));
            assert_eq!(
                delivery_address(&fields).city,
                some("Stockholm"),
                "the delivery fields are ignored"
            );
        }
    }

    #[test]
    fn fields_are_never_mixed_between_the_two_addresses() {
        let fields = OrderAddressFields {
            delivery_zip_code: None,
            delivery_country: some(""),
            ..with_delivery()
        };
        let address = delivery_address(&fields);
        assert_eq!(address.zip_code, None, "not the customer's zip code");
        assert_eq!(address.country, None);
        assert_eq!(address.country_code, None);
        assert_eq!(
            address.missing_required_fields(),
            vec![AddressField::ZipCode, AddressField::Country]
        );
    }

    #[test]
    fn values_are_trimmed_and_blank_values_are_none() {
        let fields = OrderAddressFields {
            customer_name: some("  Anna Andersson "),
            address2: some("   "),
            country: some(" finland "),
            ..customer_only()
        };
        let address = delivery_address(&fields);
        assert_eq!(address.name, some("Anna Andersson"));
        assert_eq!(address.street2, None);
        assert_eq!(
            address.country,
            some("finland"),
            "kept as written, only trimmed"
        );
        assert_eq!(address.country_code, some("FI"));
    }

    #[test]
    fn an_unknown_country_has_no_code_but_is_not_missing() {
        let fields = OrderAddressFields {
            country: some("Atlantis"),
            ..customer_only()
        };
        let address = delivery_address(&fields);
        assert_eq!(address.country, some("Atlantis"));
        assert_eq!(address.country_code, None);
        assert!(address.missing_required_fields().is_empty());
    }

    #[test]
    fn every_required_field_can_be_reported_missing() {
        let address = delivery_address(&OrderAddressFields::default());
        assert_eq!(address, DeliveryAddress::default());
        assert_eq!(
            address.missing_required_fields(),
            AddressField::REQUIRED.to_vec()
        );
    }

    #[test]
    fn the_second_address_line_is_optional() {
        let fields = OrderAddressFields {
            address2: None,
            ..customer_only()
        };
        assert!(delivery_address(&fields)
            .missing_required_fields()
            .is_empty());
    }

    #[test]
    fn fortnox_field_names_per_source() {
        use AddressField::*;
        let delivery: Vec<&str> = [Name, Street, Street2, ZipCode, City, Country]
            .map(|f| AddressSource::DeliveryFields.fortnox_field(f))
            .to_vec();
        assert_eq!(
            delivery,
            [
                "DeliveryName",
                "DeliveryAddress1",
                "DeliveryAddress2",
                "DeliveryZipCode",
                "DeliveryCity",
                "DeliveryCountry"
            ]
        );
        let customer: Vec<&str> = [Name, Street, Street2, ZipCode, City, Country]
            .map(|f| AddressSource::CustomerFields.fortnox_field(f))
            .to_vec();
        assert_eq!(
            customer,
            [
                "CustomerName",
                "Address1",
                "Address2",
                "ZipCode",
                "City",
                "Country"
            ]
        );
    }

    #[test]
    fn the_stored_json_uses_the_agreed_snake_case_keys() {
        let json = serde_json::to_value(delivery_address(&customer_only())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "Anna Andersson", "street": "Storgatan 1", "street2": "Lgh 1101",
                "zip_code": "111 22", "city": "Stockholm", "country": "Sverige", "country_code": "SE"
            })
        );
        let back: DeliveryAddress = serde_json::from_value(json).unwrap();
        assert_eq!(back, delivery_address(&customer_only()));
    }

    #[test]
    fn stored_json_with_missing_or_null_keys_reads_back_as_none() {
        let back: Result<DeliveryAddress, _> = serde_json::from_str(r#"{"name":"A","city":null}"#);
        assert_eq!(
            back.ok(),
            Some(DeliveryAddress {
                name: some("A"),
                ..DeliveryAddress::default()
            })
        );
    }

    #[test]
    fn the_fields_deserialize_from_a_fortnox_order() {
        let order = r#"{"DocumentNumber":"7","CustomerName":"Anna Andersson","Address1":"Storgatan 1",
            "Address2":"","ZipCode":"111 22","City":"Stockholm","Country":"Sverige",
            "DeliveryName":"","DeliveryAddress1":"","DeliveryAddress2":null,"DeliveryZipCode":"",
            "DeliveryCity":"","DeliveryCountry":"","OrderRows":[]}"#;
        let fields: OrderAddressFields = serde_json::from_str(order).unwrap();
        assert_eq!(fields.customer_name, some("Anna Andersson"));
        assert_eq!(fields.delivery_address2, None);
        assert_eq!(delivery_address(&fields).country_code, some("SE"));
    }
}
