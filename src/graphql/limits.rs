//! Length limits on every text a client can have us store, checked before a resolver runs.
//! async-graphql's own `max_length` does not name the argument in its message, so these
//! do: "`name` is 5000 characters long; at most 200 are allowed".
use async_graphql::{CustomValidator, InputType, InputValueError};

/// At most `max` characters (not bytes: "Å" is one).
pub(super) struct MaxChars {
    field: &'static str,
    max: usize,
}

impl MaxChars {
    pub(super) fn new(field: &'static str, max: usize) -> Self {
        MaxChars { field, max }
    }
}

impl CustomValidator<String> for MaxChars {
    fn check(&self, value: &String) -> Result<(), InputValueError<String>> {
        let length = value.chars().count();
        if length > self.max {
            return Err(InputValueError::custom(format!(
                "`{}` is {length} characters long; at most {} are allowed: shorten it",
                self.field, self.max
            )));
        }
        Ok(())
    }
}

/// At most `max` items in a list.
pub(super) struct MaxItems {
    field: &'static str,
    max: usize,
}

impl MaxItems {
    pub(super) fn new(field: &'static str, max: usize) -> Self {
        MaxItems { field, max }
    }
}

impl<T: InputType> CustomValidator<Vec<T>> for MaxItems {
    fn check(&self, value: &Vec<T>) -> Result<(), InputValueError<Vec<T>>> {
        if value.len() > self.max {
            return Err(InputValueError::custom(format!(
                "`{}` has {} items; at most {} are allowed: send them in several requests",
                self.field,
                value.len(),
                self.max
            )));
        }
        Ok(())
    }
}

/// At most `max_items` texts of at most `max_chars` characters each.
pub(super) struct MaxTexts {
    field: &'static str,
    max_items: usize,
    max_chars: usize,
}

impl MaxTexts {
    pub(super) fn new(field: &'static str, max_items: usize, max_chars: usize) -> Self {
        MaxTexts {
            field,
            max_items,
            max_chars,
        }
    }
}

impl CustomValidator<Vec<String>> for MaxTexts {
    fn check(&self, value: &Vec<String>) -> Result<(), InputValueError<Vec<String>>> {
        MaxItems::new(self.field, self.max_items).check(value)?;
        let each = MaxChars::new(self.field, self.max_chars);
        for text in value {
            each.check(text).map_err(InputValueError::propagate)?;
        }
        Ok(())
    }
}
