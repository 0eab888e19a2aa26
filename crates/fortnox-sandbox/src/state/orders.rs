//! Fortnox's order rules: creation, the RowId rules of row updates, the
//! warehouse rules on delivered quantities, and `createinvoice`. Each
//! change emits its `orders` (and `invoices`) events.

use serde_json::{Map, Value};

use super::*;

impl Tenant {
    /// `POST /3/orders`: fills in what Fortnox fills in and numbers the rows.
    pub fn create_order(&mut self, body: &Map<String, Value>, base_url: &str) -> SResult<Order> {
        let number = match body.get("DocumentNumber") {
            Some(v) => {
                let d: DocumentNumber =
                    serde_json::from_value(v.clone()).map_err(SandboxError::bad_json)?;
                if self.orders.contains_key(&d.number()) {
                    return Err(SandboxError::bad_request(
                        "Dokumentnumret används redan.",
                        codes::ORDER_LOCKED,
                    ));
                }
                d.number()
            }
            None => {
                while self.orders.contains_key(&self.next_order) {
                    self.next_order += 1;
                }
                self.next_order
            }
        };
        let mut v = serde_json::json!({
            "DocumentNumber": number.to_string(),
            "OrderDate": today(),
            "DeliveryDate": null,
            "DeliveryState": "delivery",
            "InvoiceReference": "0",
            "OrderType": "Order",
            "Currency": "SEK",
            "Cancelled": false,
            "NotCompleted": false,
            "WarehouseReady": false,
            "StockPointCode": null,
        });
        let mut patch = body.clone();
        patch.remove("DocumentNumber");
        merge(&mut v, &patch);
        let mut order: Order = serde_json::from_value(v).map_err(SandboxError::bad_json)?;
        order.url = Some(format!("{base_url}/3/orders/{number}"));
        for i in 0..order.order_rows.len() {
            let id = self.row_id();
            let row = &mut order.order_rows[i];
            row.row_id = Some(id);
            row.delivered_quantity.get_or_insert(Quantity::ZERO);
            row.reserved_quantity.get_or_insert(Quantity::ZERO);
            row.ordered_quantity.get_or_insert(Quantity::ZERO);
            row.discount.get_or_insert(Quantity::ZERO);
            row.discount_type.get_or_insert_with(|| "PERCENT".into());
            row.unit.get_or_insert_with(String::new);
        }
        order.total = Some(total(&order.order_rows, |r| r.ordered_quantity));
        self.next_order = self.next_order.max(number + 1);
        self.orders.insert(
            number,
            StoredOrder {
                order: order.clone(),
                modified: now_naive(),
                backorder_of: None,
            },
        );
        self.emit("orders", "order-created-v1", number);
        Ok(order)
    }

    /// `PUT /3/orders/{n}`: header fields are overlaid; `OrderRows`, when
    /// present, replaces the rows by the RowId rules.
    pub fn update_order(&mut self, doc: &str, body: &Map<String, Value>) -> SResult<Order> {
        let rows: Option<Vec<RowUpdate>> = match body.get("OrderRows") {
            Some(v) => Some(serde_json::from_value(v.clone()).map_err(SandboxError::bad_json)?),
            None => None,
        };
        let current = self.order(doc)?.order.clone();
        if current.cancelled {
            return Err(SandboxError::bad_request(
                "Ordern är makulerad och kan inte ändras.",
                codes::ORDER_LOCKED,
            ));
        }
        if current.invoice().is_some() {
            return Err(SandboxError::bad_request(
                "Ordern är fakturerad och kan inte ändras.",
                codes::ORDER_LOCKED,
            ));
        }
        let mut header = body.clone();
        for fixed in [
            "OrderRows",
            "DocumentNumber",
            "InvoiceReference",
            "WarehouseReady",
            "@url",
        ] {
            header.remove(fixed);
        }
        let mut v = serde_json::to_value(&current).map_err(SandboxError::bad_json)?;
        merge(&mut v, &header);
        let mut updated: Order = serde_json::from_value(v).map_err(SandboxError::bad_json)?;
        if let Some(rows) = rows {
            let mut new_rows = Vec::with_capacity(rows.len());
            for ru in rows {
                let mut row = match ru.row_id {
                    Some(id) => current
                        .order_rows
                        .iter()
                        .find(|r| r.row_id == Some(id))
                        .cloned()
                        .ok_or_else(|| {
                            SandboxError::bad_request(
                                format!("Orderrad med RowId {id} finns inte."),
                                codes::ORDER_LOCKED,
                            )
                        })?,
                    None => blank_row(),
                };
                let before = row.delivered_quantity.unwrap_or(Quantity::ZERO);
                if let Some(a) = ru.article_number {
                    row.article_number = Some(a);
                }
                if let Some(d) = ru.description {
                    row.description = Some(d);
                }
                if let Some(q) = ru.ordered_quantity {
                    row.ordered_quantity = Some(q);
                }
                if let Some(p) = ru.price {
                    row.price = Some(p);
                }
                if let Some(q) = ru.delivered_quantity {
                    if q != before && (!updated.in_delivery_state() || updated.warehouse_ready) {
                        return Err(SandboxError::bad_request(
                            "Levererat antal kan endast ändras när leveransstatus är Leverans och ordern inte är levererad.",
                            codes::DELIVERY_LOCKED,
                        ));
                    }
                    row.delivered_quantity = Some(q);
                }
                new_rows.push(row);
            }
            updated.order_rows = new_rows;
        }
        // Fortnox renumbers every row after every update.
        for i in 0..updated.order_rows.len() {
            let id = self.row_id();
            updated.order_rows[i].row_id = Some(id);
        }
        updated.total = Some(total(&updated.order_rows, |r| r.ordered_quantity));
        let stored = self.order_mut(doc)?;
        stored.order = updated.clone();
        stored.modified = now_naive();
        self.emit("orders", "order-updated-v1", &updated.document_number);
        Ok(updated)
    }

    /// `PUT /3/orders/{n}/createinvoice`. Not idempotent, as in Fortnox: every
    /// call makes an invoice (and a back order for rows delivered short).
    pub fn create_invoice(&mut self, doc: &str, base_url: &str) -> SResult<Invoice> {
        let order = self.order(doc)?.order.clone();
        if order.cancelled {
            return Err(SandboxError::bad_request(
                "Ordern är makulerad.",
                codes::ORDER_LOCKED,
            ));
        }
        let number = self.next_invoice;
        self.next_invoice += 1;
        let rows: Vec<InvoiceRow> = order
            .order_rows
            .iter()
            .map(|r| InvoiceRow {
                article_number: r.article_number.clone(),
                description: r.description.clone(),
                delivered_quantity: Some(r.delivered_quantity.unwrap_or(Quantity::ZERO)),
                price: r.price,
            })
            .collect();
        let invoice = Invoice {
            url: Some(format!("{base_url}/3/invoices/{number}")),
            document_number: DocumentNumber::from_u64(number),
            order_reference: Some(order.document_number.to_string()),
            customer_number: order.customer_number.clone(),
            invoice_date: Some(today()),
            total: Some(total(&order.order_rows, |r| r.delivered_quantity)),
            cancelled: false,
            invoice_rows: rows,
            credit: Some(false),
            credit_invoice_reference: Some("0".into()),
        };
        self.invoices.insert(number, invoice.clone());
        self.emit("invoices", "invoice-created-v1", number);

        let short: Vec<OrderRow> = order
            .order_rows
            .iter()
            .filter_map(|r| {
                let ordered = r.ordered_quantity.unwrap_or(Quantity::ZERO);
                let delivered = r.delivered_quantity.unwrap_or(Quantity::ZERO);
                (delivered < ordered).then(|| OrderRow {
                    ordered_quantity: Some(Quantity(ordered.0 - delivered.0)),
                    delivered_quantity: Some(Quantity::ZERO),
                    reserved_quantity: Some(Quantity::ZERO),
                    ..r.clone()
                })
            })
            .collect();
        if !short.is_empty() {
            self.create_backorder(&order, short, base_url);
        }
        let delivery_done = self.settings.delivery_done_on_invoice;
        let stored = self.order_mut(doc)?;
        stored.order.invoice_reference = Some(number.to_string());
        if delivery_done {
            stored.order.warehouse_ready = true;
        }
        stored.modified = now_naive();
        self.emit("orders", "order-updated-v1", &order.document_number);
        Ok(invoice)
    }

    fn create_backorder(&mut self, origin: &Order, rows: Vec<OrderRow>, base_url: &str) {
        while self.orders.contains_key(&self.next_order) {
            self.next_order += 1;
        }
        let number = self.next_order;
        self.next_order += 1;
        let mut order = origin.clone();
        order.url = Some(format!("{base_url}/3/orders/{number}"));
        order.document_number = DocumentNumber::from_u64(number);
        order.order_type = Some("Backorder".into());
        order.invoice_reference = Some("0".into());
        order.warehouse_ready = false;
        order.order_rows = rows;
        for i in 0..order.order_rows.len() {
            let id = self.row_id();
            order.order_rows[i].row_id = Some(id);
        }
        order.total = Some(total(&order.order_rows, |r| r.ordered_quantity));
        self.orders.insert(
            number,
            StoredOrder {
                order,
                modified: now_naive(),
                backorder_of: Some(origin.document_number.clone()),
            },
        );
        self.emit("orders", "order-created-v1", number);
    }
}
