//! The operator UI's words: a typed catalogue with one `Texts` per language, so a missing
//! translation is a compile error rather than a blank on the page. Ukrainian is the
//! default; `?lang=en` (remembered in a cookie) switches to English.

use actix_web::HttpRequest;

use crate::prom::client::CancellationReason;

/// The cookie that remembers the chosen language.
pub const LANG_COOKIE: &str = "promsync_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Uk,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Uk => "uk",
            Lang::En => "en",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "uk" => Some(Lang::Uk),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// `?lang=` wins (it is how the language is switched), then the cookie, then Ukrainian.
    pub fn of(req: &HttpRequest) -> Self {
        Self::from_query(req.query_string())
            .or_else(|| req.cookie(LANG_COOKIE).and_then(|c| Self::parse(c.value())))
            .unwrap_or_default()
    }

    pub fn from_query(query: &str) -> Option<Self> {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Self::parse(&v))
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::Uk => &UK,
            Lang::En => &EN,
        }
    }
}

/// Fills `{n}` in a catalogue entry.
pub fn with_n(template: &str, n: impl std::fmt::Display) -> String {
    template.replace("{n}", &n.to_string())
}

pub struct Texts {
    pub app: &'static str,
    pub login_title: &'static str,
    pub login_token: &'static str,
    pub login_submit: &'static str,
    pub login_bad_token: &'static str,
    pub login_expired_form: &'static str,
    pub logout: &'static str,
    pub nav_orders: &'static str,
    pub nav_shops: &'static str,
    pub nav_problems: &'static str,
    pub orders_title: &'static str,
    pub filter_shop: &'static str,
    pub filter_roapp: &'static str,
    pub filter_integrations: &'static str,
    pub filter_all: &'static str,
    pub filter_any_shop: &'static str,
    pub filter_apply: &'static str,
    pub col_number: &'static str,
    pub col_date: &'static str,
    pub col_buyer: &'static str,
    pub col_total: &'static str,
    pub col_status: &'static str,
    pub col_prom_status: &'static str,
    pub col_shop: &'static str,
    pub no_orders: &'static str,
    pub page_of: &'static str,
    pub prev: &'static str,
    pub next: &'static str,
    pub other_actions: &'static str,
    pub update_orders: &'static str,
    pub select_all: &'static str,
    pub refresh_results: &'static str,
    pub refresh_queued: &'static str,
    pub refresh_too_soon: &'static str,
    pub refresh_not_imported: &'static str,
    pub order_title: &'static str,
    pub integration: &'static str,
    pub field_shop: &'static str,
    pub field_external_id: &'static str,
    pub field_created: &'static str,
    pub field_last_update: &'static str,
    pub refresh: &'static str,
    pub buyer: &'static str,
    pub no_buyer: &'static str,
    pub delivery: &'static str,
    pub no_delivery: &'static str,
    pub delivery_method: &'static str,
    pub delivery_address: &'static str,
    pub recipient: &'static str,
    pub waybill: &'static str,
    pub delivery_cost: &'static str,
    pub payment: &'static str,
    pub no_payment: &'static str,
    pub payment_method: &'static str,
    pub payment_status: &'static str,
    pub paid: &'static str,
    pub unpaid: &'static str,
    pub refunded: &'static str,
    pub paid_out: &'static str,
    pub items: &'static str,
    pub col_product: &'static str,
    pub col_sku: &'static str,
    pub col_quantity: &'static str,
    pub col_price: &'static str,
    pub without_write_off: &'static str,
    pub written_off: &'static str,
    pub write_off: &'static str,
    pub status: &'static str,
    pub change_status: &'static str,
    pub cancellation_reason: &'static str,
    pub cancellation_default: &'static str,
    pub cancellation_text: &'static str,
    pub outbound_queued: &'static str,
    pub outbound_deferred: &'static str,
    pub outbound_not_mapped: &'static str,
    pub outbound_none: &'static str,
    pub written_off_done: &'static str,
    pub sync_log: &'static str,
    pub col_at: &'static str,
    pub col_source: &'static str,
    pub col_outcome: &'static str,
    pub col_detail: &'static str,
    pub no_entries: &'static str,
    pub needs_goods_permission: &'static str,
    pub needs_integrations_permission: &'static str,
    pub shops_title: &'static str,
    pub shop_settings: &'static str,
    pub shop_name: &'static str,
    pub prom_url: &'static str,
    pub prom_token: &'static str,
    pub prom_token_hint: &'static str,
    pub language: &'static str,
    pub match_products_by: &'static str,
    pub client_matching: &'static str,
    pub poll_enabled: &'static str,
    pub poll_interval: &'static str,
    pub save: &'static str,
    pub saved: &'static str,
    pub health: &'static str,
    pub last_poll: &'static str,
    pub last_error: &'static str,
    pub token_rejected: &'static str,
    pub token_ok: &'static str,
    pub never: &'static str,
    pub none: &'static str,
    pub mapping: &'static str,
    pub mapping_inbound: &'static str,
    pub mapping_outbound: &'static str,
    pub unmapped: &'static str,
    pub prom_statuses: &'static str,
    pub prom_statuses_fetched: &'static str,
    pub refresh_prom_statuses: &'static str,
    pub prom_statuses_refreshed: &'static str,
    pub not_on_prom: &'static str,
    pub secret: &'static str,
    pub rotate_secret: &'static str,
    pub new_secret_once: &'static str,
    pub previous_valid_until: &'static str,
    pub problems_title: &'static str,
    pub rejected: &'static str,
    pub dead_letters: &'static str,
    pub col_lane: &'static str,
    pub col_attempts: &'static str,
    pub col_reason: &'static str,
    pub col_order: &'static str,
    pub requeue: &'static str,
    pub requeued: &'static str,
    pub nav_employees: &'static str,
    pub employees_title: &'static str,
    pub employee_name: &'static str,
    pub col_permissions: &'static str,
    pub col_created: &'static str,
    pub perm_goods: &'static str,
    pub perm_integrations: &'static str,
    pub perm_employees: &'static str,
    pub add_employee: &'static str,
    pub new_token_once: &'static str,
    pub revoke: &'static str,
    pub revoked: &'static str,
    pub last_manager: &'static str,
    pub you: &'static str,
    pub needs_employees_permission: &'static str,
    pub error_title: &'static str,
    pub error_not_found: &'static str,
    pub error_forbidden: &'static str,
    pub error_internal: &'static str,
    pub error_csrf: &'static str,
}

pub static UK: Texts = Texts {
    app: "promsync",
    login_title: "Вхід",
    login_token: "Токен співробітника",
    login_submit: "Увійти",
    login_bad_token: "Невідомий токен.",
    login_expired_form: "Форма застаріла; спробуйте ще раз.",
    logout: "Вийти",
    nav_orders: "Замовлення",
    nav_shops: "Магазини",
    nav_problems: "Проблеми синхронізації",
    orders_title: "Замовлення",
    filter_shop: "Магазин",
    filter_roapp: "RO App",
    filter_integrations: "Інтеграції",
    filter_all: "Усі",
    filter_any_shop: "Будь-який магазин",
    filter_apply: "Показати",
    col_number: "№",
    col_date: "Дата",
    col_buyer: "Покупець",
    col_total: "Сума",
    col_status: "Статус RO App",
    col_prom_status: "Статус Prom",
    col_shop: "Магазин",
    no_orders: "Замовлень немає.",
    page_of: "Сторінка {n}",
    prev: "← Назад",
    next: "Далі →",
    other_actions: "Інші дії",
    update_orders: "Оновити замовлення",
    select_all: "Вибрати всі",
    refresh_results: "Оновлення замовлень",
    refresh_queued: "оновлення поставлено в чергу",
    refresh_too_soon: "буде доступно через {n} хв",
    refresh_not_imported: "замовлення RO App: нічого оновлювати",
    order_title: "Замовлення №{n}",
    integration: "Інтеграція",
    field_shop: "Магазин",
    field_external_id: "Зовнішній ID",
    field_created: "Створено",
    field_last_update: "Останнє оновлення",
    refresh: "Оновити",
    buyer: "Покупець",
    no_buyer: "Без покупця",
    delivery: "Доставка",
    no_delivery: "Без даних про доставку",
    delivery_method: "Спосіб доставки",
    delivery_address: "Адреса",
    recipient: "Отримувач",
    waybill: "ТТН",
    delivery_cost: "Вартість доставки",
    payment: "Оплата",
    no_payment: "Без даних про оплату",
    payment_method: "Спосіб оплати",
    payment_status: "Статус оплати",
    paid: "Оплачено",
    unpaid: "Не оплачено",
    refunded: "Повернено",
    paid_out: "Виплачено продавцю",
    items: "Товари",
    col_product: "Товар",
    col_sku: "Артикул",
    col_quantity: "Кількість",
    col_price: "Ціна",
    without_write_off: "без списання",
    written_off: "списано",
    write_off: "Списати товари",
    status: "Статус",
    change_status: "Змінити статус",
    cancellation_reason: "Причина скасування для Prom",
    cancellation_default: "— типова (інша, з текстом налаштувань) —",
    cancellation_text: "Текст скасування",
    outbound_queued: "Статус змінено; надіслано до Prom.",
    outbound_deferred: "Статус змінено; до Prom буде надіслано після списання товарів.",
    outbound_not_mapped: "Статус змінено; для Prom статус не зіставлено, нічого не надіслано.",
    outbound_none: "Статус змінено.",
    written_off_done: "Товари списано.",
    sync_log: "Журнал синхронізації",
    col_at: "Час",
    col_source: "Джерело",
    col_outcome: "Результат",
    col_detail: "Подробиці",
    no_entries: "Записів немає.",
    needs_goods_permission: "Потрібен дозвіл «Може додавати товари без списання».",
    needs_integrations_permission: "Потрібен дозвіл «Може керувати інтеграціями».",
    shops_title: "Магазини Prom",
    shop_settings: "Налаштування",
    shop_name: "Назва",
    prom_url: "Адреса Prom",
    prom_token: "Токен Prom",
    prom_token_hint:
        "Лише запис: залиште порожнім, щоб не змінювати (нова адреса Prom потребує токена).",
    language: "Мова",
    match_products_by: "Зіставляти товари за",
    client_matching: "Клієнти",
    poll_enabled: "Опитувати Prom",
    poll_interval: "Інтервал опитування, с",
    save: "Зберегти",
    saved: "Збережено.",
    health: "Стан",
    last_poll: "Опитано до",
    last_error: "Остання помилка",
    token_rejected: "Prom відхилив токен",
    token_ok: "Токен приймається",
    never: "ще ні",
    none: "немає",
    mapping: "Відповідність статусів",
    mapping_inbound: "Prom → RO App",
    mapping_outbound: "RO App → Prom",
    unmapped: "— не зіставлено —",
    prom_statuses: "Статуси магазину на Prom",
    prom_statuses_fetched: "Отримано з Prom",
    refresh_prom_statuses: "Оновити з Prom",
    prom_statuses_refreshed: "Статуси магазину отримано з Prom.",
    not_on_prom: "немає на Prom",
    secret: "Секрет вебхука",
    rotate_secret: "Змінити секрет",
    new_secret_once: "Новий секрет (показується один раз):",
    previous_valid_until: "Попередній діє до",
    problems_title: "Проблеми синхронізації",
    rejected: "Відхилені сповіщення",
    dead_letters: "Недоставлені повідомлення",
    col_lane: "Черга",
    col_attempts: "Спроби",
    col_reason: "Причина",
    col_order: "Замовлення",
    requeue: "Повторити",
    requeued: "Повідомлення повернуто в чергу.",
    nav_employees: "Співробітники",
    employees_title: "Співробітники",
    employee_name: "Ім'я",
    col_permissions: "Дозволи",
    col_created: "Створено",
    perm_goods: "Може додавати товари без списання",
    perm_integrations: "Може керувати інтеграціями",
    perm_employees: "Може керувати співробітниками",
    add_employee: "Додати співробітника",
    new_token_once: "Токен нового співробітника (показується один раз):",
    revoke: "Закрити доступ",
    revoked: "Доступ закрито: токен більше не діє, сеанси завершено.",
    last_manager: "Це останній співробітник, який може керувати співробітниками; спершу додайте іншого співробітника з цим дозволом.",
    you: "(ви)",
    needs_employees_permission: "Потрібен дозвіл «Може керувати співробітниками».",
    error_title: "Помилка",
    error_not_found: "Не знайдено.",
    error_forbidden: "Недостатньо прав.",
    error_internal: "Внутрішня помилка; спробуйте пізніше.",
    error_csrf: "Форма застаріла або підроблена; оновіть сторінку.",
};

pub static EN: Texts = Texts {
    app: "promsync",
    login_title: "Sign in",
    login_token: "Employee token",
    login_submit: "Sign in",
    login_bad_token: "Unknown token.",
    login_expired_form: "The form expired; try again.",
    logout: "Sign out",
    nav_orders: "Orders",
    nav_shops: "Shops",
    nav_problems: "Sync problems",
    orders_title: "Orders",
    filter_shop: "Shop",
    filter_roapp: "RO App",
    filter_integrations: "Integrations",
    filter_all: "All",
    filter_any_shop: "Any shop",
    filter_apply: "Show",
    col_number: "No.",
    col_date: "Date",
    col_buyer: "Buyer",
    col_total: "Total",
    col_status: "RO App status",
    col_prom_status: "Prom status",
    col_shop: "Shop",
    no_orders: "No orders.",
    page_of: "Page {n}",
    prev: "← Previous",
    next: "Next →",
    other_actions: "Other actions",
    update_orders: "Update orders",
    select_all: "Select all",
    refresh_results: "Updating orders",
    refresh_queued: "update queued",
    refresh_too_soon: "available again in {n} min",
    refresh_not_imported: "an RO App order: nothing to update",
    order_title: "Order No. {n}",
    integration: "Integration",
    field_shop: "Shop",
    field_external_id: "External ID",
    field_created: "Created",
    field_last_update: "Last update",
    refresh: "Refresh",
    buyer: "Buyer",
    no_buyer: "No buyer",
    delivery: "Delivery",
    no_delivery: "No delivery information",
    delivery_method: "Delivery method",
    delivery_address: "Address",
    recipient: "Recipient",
    waybill: "Waybill",
    delivery_cost: "Delivery cost",
    payment: "Payment",
    no_payment: "No payment information",
    payment_method: "Payment method",
    payment_status: "Payment status",
    paid: "Paid",
    unpaid: "Unpaid",
    refunded: "Refunded",
    paid_out: "Paid out to the seller",
    items: "Items",
    col_product: "Product",
    col_sku: "SKU",
    col_quantity: "Quantity",
    col_price: "Price",
    without_write_off: "without write-off",
    written_off: "written off",
    write_off: "Write off goods",
    status: "Status",
    change_status: "Change status",
    cancellation_reason: "Cancellation reason for Prom",
    cancellation_default: "— default (another, with the configured text) —",
    cancellation_text: "Cancellation text",
    outbound_queued: "Status changed; sent to Prom.",
    outbound_deferred: "Status changed; it will be sent to Prom after the write-off.",
    outbound_not_mapped: "Status changed; not mapped to a Prom status, nothing sent.",
    outbound_none: "Status changed.",
    written_off_done: "Goods written off.",
    sync_log: "Sync log",
    col_at: "Time",
    col_source: "Source",
    col_outcome: "Outcome",
    col_detail: "Detail",
    no_entries: "No entries.",
    needs_goods_permission: "Needs the permission \"can add goods without write-off\".",
    needs_integrations_permission: "Needs the permission \"can manage integrations\".",
    shops_title: "Prom shops",
    shop_settings: "Settings",
    shop_name: "Name",
    prom_url: "Prom URL",
    prom_token: "Prom token",
    prom_token_hint:
        "Write-only: leave empty to keep the current one (a new Prom URL needs the token).",
    language: "Language",
    match_products_by: "Match products by",
    client_matching: "Client matching",
    poll_enabled: "Poll Prom",
    poll_interval: "Poll interval, s",
    save: "Save",
    saved: "Saved.",
    health: "Health",
    last_poll: "Polled up to",
    last_error: "Last error",
    token_rejected: "Prom rejected the token",
    token_ok: "Token accepted",
    never: "not yet",
    none: "none",
    mapping: "Status mapping",
    mapping_inbound: "Prom → RO App",
    mapping_outbound: "RO App → Prom",
    unmapped: "— not mapped —",
    prom_statuses: "The shop's statuses on Prom",
    prom_statuses_fetched: "Fetched from Prom",
    refresh_prom_statuses: "Refresh from Prom",
    prom_statuses_refreshed: "The shop's statuses were fetched from Prom.",
    not_on_prom: "not on Prom",
    secret: "Webhook secret",
    rotate_secret: "Rotate secret",
    new_secret_once: "New secret (shown once):",
    previous_valid_until: "The previous one works until",
    problems_title: "Sync problems",
    rejected: "Rejected notifications",
    dead_letters: "Dead letters",
    col_lane: "Queue",
    col_attempts: "Attempts",
    col_reason: "Reason",
    col_order: "Order",
    requeue: "Requeue",
    requeued: "The message is back in its queue.",
    nav_employees: "Employees",
    employees_title: "Employees",
    employee_name: "Name",
    col_permissions: "Permissions",
    col_created: "Created",
    perm_goods: "Can add goods without write-off",
    perm_integrations: "Can manage integrations",
    perm_employees: "Can manage employees",
    add_employee: "Add employee",
    new_token_once: "The new employee's token (shown once):",
    revoke: "Revoke access",
    revoked: "Access revoked: the token no longer works and its sessions have ended.",
    last_manager: "This is the last employee who can manage employees; add another employee with that permission first.",
    you: "(you)",
    needs_employees_permission: "Needs the permission \"can manage employees\".",
    error_title: "Error",
    error_not_found: "Not found.",
    error_forbidden: "Not allowed.",
    error_internal: "Internal error; try again later.",
    error_csrf: "The form is stale or forged; reload the page.",
};

/// Prom's status names as operators know them; custom statuses show their id.
pub fn prom_status(lang: Lang, status: &str) -> String {
    known_prom_status(lang, status).unwrap_or_else(|| status.to_owned())
}

/// An order's Prom status: Prom's standard statuses in the operator's language, any other
/// (a seller's custom status) by the name Prom gave it, and by its code only when Prom
/// sent no name. The standard ones keep our label because Prom names them in the shop's
/// language, which need not be the operator's.
pub fn order_prom_status(lang: Lang, status: &str, title: Option<&str>) -> String {
    known_prom_status(lang, status)
        .or_else(|| title.map(str::to_owned))
        .unwrap_or_else(|| status.to_owned())
}

/// Prom's cancellation reasons as operators know them.
pub fn cancellation_reason(lang: Lang, reason: CancellationReason) -> &'static str {
    let (uk, en) = match reason {
        CancellationReason::NotAvailable => ("Немає в наявності", "Not available"),
        CancellationReason::PriceChanged => ("Змінилася ціна", "Price changed"),
        CancellationReason::BuyersRequest => ("На прохання покупця", "Buyer's request"),
        CancellationReason::NotEnoughFields => ("Бракує даних", "Not enough details"),
        CancellationReason::Duplicate => ("Дублікат замовлення", "Duplicate order"),
        CancellationReason::InvalidPhoneNumber => ("Невірний телефон", "Invalid phone number"),
        CancellationReason::LessThanMinimalPrice => {
            ("Менше мінімальної суми", "Below the minimum order")
        }
        CancellationReason::Another => ("Інша причина", "Another reason"),
    };
    match lang {
        Lang::Uk => uk,
        Lang::En => en,
    }
}

fn known_prom_status(lang: Lang, status: &str) -> Option<String> {
    let (uk, en) = match status {
        "pending" => ("Нове", "New"),
        "received" => ("Прийнято", "Accepted"),
        "delivered" => ("Виконано", "Delivered"),
        "canceled" => ("Скасовано", "Canceled"),
        "paid" => ("Оплачено", "Paid"),
        "draft" => ("Чернетка", "Draft"),
        _ => return None,
    };
    Some(match lang {
        Lang::Uk => uk.to_owned(),
        Lang::En => en.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_comes_from_the_query_first_and_defaults_to_ukrainian() {
        assert_eq!(Lang::from_query("a=1&lang=en"), Some(Lang::En));
        assert_eq!(Lang::from_query("lang=de"), None);
        let req = actix_web::test::TestRequest::default().to_http_request();
        assert_eq!(Lang::of(&req), Lang::Uk);
        assert_eq!(with_n(EN.refresh_too_soon, 7), "available again in 7 min");
    }

    #[test]
    fn an_order_shows_a_custom_status_by_prom_name_and_a_standard_one_in_the_operator_language() {
        let custom = order_prom_status(Lang::En, "custom-137639", Some("Підтверджено"));
        let unnamed = order_prom_status(Lang::Uk, "custom-137639", None);
        let standard = order_prom_status(Lang::En, "pending", Some("Нове"));

        assert_eq!(custom, "Підтверджено");
        assert_eq!(unnamed, "custom-137639");
        assert_eq!(standard, "New");
    }
}
