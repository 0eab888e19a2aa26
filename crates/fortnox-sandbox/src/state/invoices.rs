//! Invoices: reading one, and `PUT /3/invoices/{n}/credit`.

use super::*;

impl Tenant {
    pub fn invoice(&self, doc: &str) -> SResult<&Invoice> {
        doc.parse::<u64>()
            .ok()
            .and_then(|n| self.invoices.get(&n))
            .ok_or_else(|| {
                SandboxError::not_found("Kan inte hitta fakturan.", codes::INVOICE_NOT_FOUND)
            })
    }

    /// Every invoice made from order `order` (its `OrderReference`), credit
    /// invoices included, by number.
    pub fn invoices_of_order(&self, order: &str) -> Vec<Invoice> {
        let order = order.trim();
        self.invoices
            .values()
            .filter(|i| i.order_reference.as_deref().map(str::trim) == Some(order))
            .cloned()
            .collect()
    }

    /// `PUT /3/invoices/{n}/credit`: a new credit invoice (next number of the
    /// same counter) with the original's rows and `OrderReference`, pointing
    /// back at the original, which then points at it. Not idempotent: a second
    /// credit is refused, which is what keeps a blind retry from crediting twice.
    pub fn credit_invoice(&mut self, doc: &str, base_url: &str) -> SResult<Invoice> {
        let original = self.invoice(doc)?.clone();
        if original.is_credit() {
            return Err(SandboxError::bad_request(
                "Fakturan är en kreditfaktura och kan inte krediteras.",
                codes::INVOICE_IS_CREDIT,
            ));
        }
        if let Some(credit) = original.credited_by() {
            return Err(SandboxError::bad_request(
                format!("Fakturan är redan krediterad (kreditfaktura {credit})."),
                codes::INVOICE_ALREADY_CREDITED,
            ));
        }
        if original.cancelled {
            return Err(SandboxError::bad_request(
                "Fakturan är makulerad och kan inte krediteras.",
                codes::INVOICE_CANCELLED,
            ));
        }
        let number = self.next_invoice;
        self.next_invoice += 1;
        let credit = Invoice {
            url: Some(format!("{base_url}/3/invoices/{number}")),
            document_number: DocumentNumber::from_u64(number),
            invoice_date: Some(today()),
            cancelled: false,
            credit: Some(true),
            credit_invoice_reference: Some(original.document_number.to_string()),
            ..original.clone()
        };
        self.invoices.insert(number, credit.clone());
        let key = original.document_number.number();
        if let Some(stored) = self.invoices.get_mut(&key) {
            stored.credit_invoice_reference = Some(number.to_string());
        }
        self.emit("invoices", "invoice-created-v1", number);
        self.emit("invoices", "invoice-updated-v1", key);
        Ok(credit)
    }
}
