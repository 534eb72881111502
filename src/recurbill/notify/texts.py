"""The words of every e-mail recurbill renders, per locale, keyed by message id.

Plain dictionaries of :meth:`str.format` templates, so a translator edits text,
never code. Every locale has every key with the same ``{placeholders}``
(a test checks it). To add a language, copy ``EN_GB``, translate the values,
and add it to :data:`TEXTS` and to the language map in ``render.py``.

Conventions followed: Norwegian invoices say *Forfallsdato*, *KID*, *mva.* and
*Beløp å betale*; Swedish ones *Förfallodatum*, *OCR-nummer*, *moms* and *Att
betala*; Icelandic ones *Gjalddagi*, *VSK* and *Til greiðslu*.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["EN_GB", "IS_IS", "NB_NO", "SV_SE", "TEXTS"]

EN_GB: dict[str, str] = {
    "greeting": "Hello {name},",
    "signoff": "Kind regards,\n{account}",
    "label.invoice": "Invoice",
    "label.invoices": "Invoices",
    "label.amount": "Amount",
    # invoice e-mail
    "invoice.subject": "Invoice {number} from {account}",
    "invoice.intro": "Here is your invoice {number} from {account}.",
    "invoice.number": "Invoice number",
    "invoice.issue_date": "Invoice date",
    "invoice.due_date": "Due date",
    "invoice.reference.kid": "KID number",
    "invoice.reference.ocr": "OCR number",
    "invoice.reference.other": "Payment reference",
    "invoice.col.description": "Description",
    "invoice.col.quantity": "Qty",
    "invoice.col.unit_price": "Unit price",
    "invoice.col.vat": "VAT",
    "invoice.col.amount": "Amount",
    "invoice.price_per": "{price} per {base}",
    "invoice.line_allowance": "Discount",
    "invoice.line_charge": "Charge",
    "invoice.line_allowance_percent": "Discount {percentage} of {base}",
    "invoice.line_charge_percent": "Charge {percentage} of {base}",
    "invoice.allowance": "Invoice discount",
    "invoice.charge": "Invoice charge",
    "invoice.allowance_percent": "Invoice discount {percentage} of {base}",
    "invoice.charge_percent": "Invoice charge {percentage} of {base}",
    "invoice.net_total": "Total excl. VAT",
    "invoice.vat": "VAT",
    "invoice.vat_rate": "VAT {rate} of {base}",
    "invoice.total": "Total incl. VAT",
    "invoice.settled": "Already paid or credited",
    "invoice.amount_due": "Amount due",
    "invoice.pay_by_transfer": "Please pay {amount} by {due_date}.",
    "invoice.pay_now": "Please pay {amount} now; the invoice was due on {due_date}.",
    "invoice.use_reference.kid": "Use the KID number {reference} when you pay.",
    "invoice.use_reference.ocr": "Use the OCR number {reference} when you pay.",
    "invoice.use_reference.other": "Use the payment reference {reference} when "
    "you pay.",
    "invoice.paid": "This invoice is paid; nothing is due.",
    "invoice.not_charged.below_minimum": "The amount left to pay is less than "
    "the smallest amount we can charge to a card, so your card has not been "
    "charged.",
    "invoice.not_charged.above_maximum": "The amount left to pay is more than "
    "the largest amount we can charge to a card, so your card has not been "
    "charged.",
    "invoice.not_charged.not_increment": "The amount left to pay cannot be "
    "charged to a card, so your card has not been charged.",
    # receipt
    "receipt.subject": "Receipt {number} from {account}",
    "receipt.intro": "Thank you for your payment of {amount}.",
    "receipt.number": "Receipt number",
    "receipt.date": "Payment date",
    "receipt.method": "Paid with",
    "receipt.card": "{brand} ending in {last4}",
    "receipt.card_unknown": "card",
    "receipt.settled_one": "Invoice paid",
    "receipt.settled_other": "Invoices paid",
    "receipt.credit_label": "Credit in your favour",
    "receipt.credit": "The remaining {amount} is kept as credit in your favour "
    "with {account}.",
    "receipt.total": "Total paid",
    # payment needs action
    "action.subject": "Please confirm your payment to {account}",
    "action.intro": "Your bank needs you to confirm the card payment of {amount} "
    "before it can go through.",
    "action.link": "Confirm the payment here: {url}",
    "action.button": "Confirm the payment",
    "action.no_link": "Open your payment overview with {account} to confirm it.",
    # payment failed
    "failed.subject": "Your payment to {account} did not go through",
    "failed.intro": "We tried to charge {amount} to your card, but the payment "
    "was declined.",
    "failed.reason": "Reason: {reason}",
    "failed.next_one": "The invoice is still open. You can pay it from your "
    "payment overview, with the same card or another one.",
    "failed.next_other": "The invoices are still open. You can pay them from your "
    "payment overview, with the same card or another one.",
    "decline.generic": "the bank declined the payment",
    "decline.insufficient_funds": "insufficient funds",
    "decline.expired_card": "the card has expired",
    "decline.limit": "the card's spending limit has been reached",
    "decline.processing_error": "a temporary error at the bank; please try again later",
    "decline.not_charged": "the card could not be charged",
    # daily summary
    "summary.subject": "Billing summary for {account}, {date}",
    "summary.intro": "Summary of the automatic billing run on {date} for {account}.",
    "summary.nothing": "Nothing to report: no invoices were issued and no cards "
    "were charged.",
    "summary.issued": "Invoices issued ({count})",
    "summary.issued_total": "Total invoiced",
    "summary.charges": "Card payments ({count})",
    "summary.skipped": "Skipped while paused ({count})",
    "summary.ended": "Recurring invoices that ended ({count})",
    "summary.failed": "Could not be issued ({count})",
    "summary.failed_note": "These recurring invoices were left as they are and "
    "are tried again in the next run. Correct them or end them.",
    "summary.failed_reference_note": "The invoice numbers no longer fit the "
    "account's fixed payment-reference length. These recurring invoices need no "
    "correction: change the account's reference scheme to a longer length, as "
    "agreed with the bank, and the next run issues them.",
    "summary.col.problem": "Problem",
    "summary.failed_details": "Details:",
    "summary.unreadable": "Stored records that could not be read ({count})",
    "summary.unreadable_note": "These records were set aside and left as they "
    "are: nothing was charged, refunded or changed for them. Correct each "
    "row to what recurbill writes, or restore it from a backup, and the next "
    "run handles it.",
    "summary.problem.other": "Invalid data",
    "summary.problem.amount": "Invalid amount",
    "summary.problem.unknown_currency": "Unknown currency",
    "summary.problem.currencies": "Amounts in different currencies",
    "summary.problem.vat": "Invalid VAT rate or exemption reason",
    "summary.problem.lines": "Invalid invoice lines",
    "summary.problem.schedule": "Invalid schedule",
    "summary.problem.reference": "Invalid payment reference",
    "summary.problem.reference_length": "Invoice number too long for the "
    "payment reference",
    "summary.problem.record": "Invalid customer or account details",
    "summary.problem.unreadable": "Stored data could not be read",
    "summary.decline.insufficient_funds": "insufficient funds",
    "summary.decline.expired_card": "card expired",
    "summary.decline.limit": "card limit reached",
    "summary.decline.processing_error": "temporary error at the bank",
    "summary.decline.not_charged": "did not reach the bank",
    "summary.col.invoice": "Invoice",
    "summary.col.customer": "Customer",
    "summary.col.date": "Date",
    "summary.col.amount": "Amount",
    "summary.col.result": "Result",
    "summary.col.template": "Recurring invoice",
    "summary.total_succeeded": "Paid",
    "summary.total_declined": "Declined",
    "summary.total_requires_action": "Awaiting the customer's confirmation",
    "summary.total_pending": "Not sent yet",
    "summary.uncharged": "Not charged to a card ({count})",
    "summary.uncharged_note": "A card cannot be charged these amounts, so "
    "each invoice was e-mailed to the customer instead, to pay by its due "
    "date (or now, if that has passed) with its payment reference. They are "
    "not charged to the card automatically.",
    "summary.uncharged_total": "Sent as invoices",
    "summary.uncharged.below_minimum": "Below the card minimum",
    "summary.uncharged.above_maximum": "Above the card maximum",
    "summary.uncharged.not_increment": "An amount a card cannot take",
    "summary.uncharged.retry": "{reason}; part paid",
    "summary.more": "… and {count} more, not listed here.",
    "status.pending": "Pending",
    "status.succeeded": "Paid",
    "status.declined": "Declined",
    "status.requires_action": "Needs the customer's confirmation",
    "status.processing": "Processing",
    "status.failed_unknown": "Outcome unknown, being checked",
    "status.canceled": "Cancelled",
}

NB_NO: dict[str, str] = {
    "greeting": "Hei {name},",
    "signoff": "Vennlig hilsen\n{account}",
    "label.invoice": "Faktura",
    "label.invoices": "Fakturaer",
    "label.amount": "Beløp",
    "invoice.subject": "Faktura {number} fra {account}",
    "invoice.intro": "Her er faktura {number} fra {account}.",
    "invoice.number": "Fakturanummer",
    "invoice.issue_date": "Fakturadato",
    "invoice.due_date": "Forfallsdato",
    "invoice.reference.kid": "KID",
    "invoice.reference.ocr": "OCR-referanse",
    "invoice.reference.other": "Betalingsreferanse",
    "invoice.col.description": "Beskrivelse",
    "invoice.col.quantity": "Antall",
    "invoice.col.unit_price": "Enhetspris",
    "invoice.col.vat": "Mva.",
    "invoice.col.amount": "Beløp",
    "invoice.price_per": "{price} pr. {base}",
    "invoice.line_allowance": "Rabatt",
    "invoice.line_charge": "Tillegg",
    "invoice.line_allowance_percent": "Rabatt {percentage} av {base}",
    "invoice.line_charge_percent": "Tillegg {percentage} av {base}",
    "invoice.allowance": "Rabatt på fakturaen",
    "invoice.charge": "Tillegg på fakturaen",
    "invoice.allowance_percent": "Rabatt på fakturaen, {percentage} av {base}",
    "invoice.charge_percent": "Tillegg på fakturaen, {percentage} av {base}",
    "invoice.net_total": "Sum eks. mva.",
    "invoice.vat": "Mva.",
    "invoice.vat_rate": "Mva. {rate} av {base}",
    "invoice.total": "Sum inkl. mva.",
    "invoice.settled": "Allerede betalt eller kreditert",
    "invoice.amount_due": "Beløp å betale",
    "invoice.pay_by_transfer": "Vennligst betal {amount} innen {due_date}.",
    "invoice.pay_now": "Vennligst betal {amount} snarest; fakturaen forfalt til "
    "betaling {due_date}.",
    "invoice.use_reference.kid": "Husk å bruke KID {reference} når du betaler.",
    "invoice.use_reference.ocr": "Oppgi OCR-referansen {reference} når du betaler.",
    "invoice.use_reference.other": "Oppgi referansen {reference} når du betaler.",
    "invoice.paid": "Fakturaen er betalt; det er ingenting å betale.",
    "invoice.not_charged.below_minimum": "Beløpet å betale er lavere enn det "
    "minste beløpet vi kan trekke fra et kort, så kortet ditt er ikke belastet.",
    "invoice.not_charged.above_maximum": "Beløpet å betale er høyere enn det "
    "største beløpet vi kan trekke fra et kort, så kortet ditt er ikke belastet.",
    "invoice.not_charged.not_increment": "Beløpet å betale kan ikke trekkes fra "
    "et kort, så kortet ditt er ikke belastet.",
    "receipt.subject": "Kvittering {number} fra {account}",
    "receipt.intro": "Takk for betalingen på {amount}.",
    "receipt.number": "Kvitteringsnummer",
    "receipt.date": "Betalingsdato",
    "receipt.method": "Betalt med",
    "receipt.card": "{brand} som slutter på {last4}",
    "receipt.card_unknown": "kort",
    "receipt.settled_one": "Betalt faktura",
    "receipt.settled_other": "Betalte fakturaer",
    "receipt.credit_label": "Til gode",
    "receipt.credit": "Resten, {amount}, står til gode hos {account}.",
    "receipt.total": "Totalt betalt",
    "action.subject": "Bekreft betalingen til {account}",
    "action.intro": "Banken din må få bekreftet kortbetalingen på {amount} før "
    "den kan gjennomføres.",
    "action.link": "Bekreft betalingen her: {url}",
    "action.button": "Bekreft betalingen",
    "action.no_link": "Åpne betalingsoversikten din hos {account} for å bekrefte den.",
    "failed.subject": "Betalingen til {account} gikk ikke gjennom",
    "failed.intro": "Vi forsøkte å belaste kortet ditt med {amount}, men "
    "betalingen ble avvist.",
    "failed.reason": "Årsak: {reason}",
    "failed.next_one": "Fakturaen er fortsatt ubetalt. Du kan betale den fra "
    "betalingsoversikten, med det samme kortet eller et annet.",
    "failed.next_other": "Fakturaene er fortsatt ubetalt. Du kan betale dem fra "
    "betalingsoversikten, med det samme kortet eller et annet.",
    "decline.generic": "banken avviste betalingen",
    "decline.insufficient_funds": "ikke dekning på kontoen",
    "decline.expired_card": "kortet er utløpt",
    "decline.limit": "kortets beløpsgrense er nådd",
    "decline.processing_error": "en midlertidig feil hos banken; prøv igjen senere",
    "decline.not_charged": "kortet kunne ikke belastes",
    "summary.subject": "Daglig oppsummering for {account}, {date}",
    "summary.intro": "Oversikt over den automatiske faktureringen {date} for "
    "{account}.",
    "summary.nothing": "Ingenting å rapportere: ingen fakturaer ble utstedt og "
    "ingen kort ble belastet.",
    "summary.issued": "Utstedte fakturaer ({count})",
    "summary.issued_total": "Sum fakturert",
    "summary.charges": "Kortbetalinger ({count})",
    "summary.skipped": "Hoppet over under pause ({count})",
    "summary.ended": "Gjentakende fakturaer som er avsluttet ({count})",
    "summary.failed": "Kunne ikke utstedes ({count})",
    "summary.failed_note": "Disse gjentakende fakturaene ble ikke endret og "
    "prøves igjen ved neste kjøring. Rett dem opp eller avslutt dem.",
    "summary.failed_reference_note": "Fakturanumrene får ikke lenger plass i "
    "kontoens faste lengde på betalingsreferansen. Disse gjentakende fakturaene "
    "trenger ingen retting: endre kontoens referanseoppsett til en lengre "
    "lengde, etter avtale med banken, så utstedes de ved neste kjøring.",
    "summary.col.problem": "Årsak",
    "summary.failed_details": "Detaljer (på engelsk):",
    "summary.unreadable": "Lagrede poster som ikke kunne leses ({count})",
    "summary.unreadable_note": "Disse postene ble lagt til side og ikke "
    "endret: ingenting ble trukket, refundert eller endret for dem. Rett hver "
    "rad til det recurbill skriver, eller hent den fra en sikkerhetskopi, så "
    "håndteres den ved neste kjøring.",
    "summary.problem.other": "Ugyldige opplysninger",
    "summary.problem.amount": "Ugyldig beløp",
    "summary.problem.unknown_currency": "Ukjent valuta",
    "summary.problem.currencies": "Beløp i ulike valutaer",
    "summary.problem.vat": "Ugyldig mva.-sats eller fritaksgrunn",
    "summary.problem.lines": "Ugyldige fakturalinjer",
    "summary.problem.schedule": "Ugyldig tidsplan",
    "summary.problem.reference": "Ugyldig betalingsreferanse",
    "summary.problem.reference_length": "Fakturanummeret er for langt for "
    "betalingsreferansen",
    "summary.problem.record": "Ugyldige kunde- eller kontoopplysninger",
    "summary.problem.unreadable": "Lagrede data kunne ikke leses",
    "summary.decline.insufficient_funds": "ikke dekning",
    "summary.decline.expired_card": "kortet er utløpt",
    "summary.decline.limit": "beløpsgrensen er nådd",
    "summary.decline.processing_error": "midlertidig feil hos banken",
    "summary.decline.not_charged": "nådde ikke banken",
    "summary.col.invoice": "Faktura",
    "summary.col.customer": "Kunde",
    "summary.col.date": "Dato",
    "summary.col.amount": "Beløp",
    "summary.col.result": "Resultat",
    "summary.col.template": "Gjentakende faktura",
    "summary.total_succeeded": "Betalt",
    "summary.total_declined": "Avvist",
    "summary.total_requires_action": "Venter på bekreftelse fra kunden",
    "summary.total_pending": "Ikke sendt ennå",
    "summary.uncharged": "Ikke trukket fra kort ({count})",
    "summary.uncharged_note": "Disse beløpene kan ikke trekkes fra kort. "
    "Hver faktura ble derfor sendt til kunden på e-post, til betaling innen "
    "forfallsdatoen (eller snarest, om den er passert) med "
    "betalingsreferansen. De trekkes ikke automatisk fra kortet.",
    "summary.uncharged_total": "Sendt som faktura",
    "summary.uncharged.below_minimum": "Under minstebeløpet for kort",
    "summary.uncharged.above_maximum": "Over maksbeløpet for kort",
    "summary.uncharged.not_increment": "Beløpet kan ikke trekkes fra kort",
    "summary.uncharged.retry": "{reason}; delbetalt",
    "summary.more": "… og {count} til, som ikke er listet her.",
    "status.pending": "Venter",
    "status.succeeded": "Betalt",
    "status.declined": "Avvist",
    "status.requires_action": "Må bekreftes av kunden",
    "status.processing": "Under behandling",
    "status.failed_unknown": "Ukjent utfall, undersøkes",
    "status.canceled": "Kansellert",
}

SV_SE: dict[str, str] = {
    "greeting": "Hej {name},",
    "signoff": "Vänliga hälsningar\n{account}",
    "label.invoice": "Faktura",
    "label.invoices": "Fakturor",
    "label.amount": "Belopp",
    "invoice.subject": "Faktura {number} från {account}",
    "invoice.intro": "Här kommer faktura {number} från {account}.",
    "invoice.number": "Fakturanummer",
    "invoice.issue_date": "Fakturadatum",
    "invoice.due_date": "Förfallodatum",
    "invoice.reference.kid": "KID-nummer",
    "invoice.reference.ocr": "OCR-nummer",
    "invoice.reference.other": "Betalningsreferens",
    "invoice.col.description": "Beskrivning",
    "invoice.col.quantity": "Antal",
    "invoice.col.unit_price": "À-pris",
    "invoice.col.vat": "Moms",
    "invoice.col.amount": "Belopp",
    "invoice.price_per": "{price} för {base}",
    "invoice.line_allowance": "Rabatt",
    "invoice.line_charge": "Tillägg",
    "invoice.line_allowance_percent": "Rabatt {percentage} på {base}",
    "invoice.line_charge_percent": "Tillägg {percentage} på {base}",
    "invoice.allowance": "Rabatt på fakturan",
    "invoice.charge": "Tillägg på fakturan",
    "invoice.allowance_percent": "Rabatt på fakturan, {percentage} av {base}",
    "invoice.charge_percent": "Tillägg på fakturan, {percentage} av {base}",
    "invoice.net_total": "Summa exkl. moms",
    "invoice.vat": "Moms",
    "invoice.vat_rate": "Moms {rate} på {base}",
    "invoice.total": "Summa inkl. moms",
    "invoice.settled": "Redan betalt eller krediterat",
    "invoice.amount_due": "Att betala",
    "invoice.pay_by_transfer": "Vänligen betala {amount} senast {due_date}.",
    "invoice.pay_now": "Vänligen betala {amount} snarast; fakturan förföll till "
    "betalning den {due_date}.",
    "invoice.use_reference.kid": "Ange KID-numret {reference} när du betalar.",
    "invoice.use_reference.ocr": "Ange OCR-numret {reference} när du betalar.",
    "invoice.use_reference.other": "Ange referensen {reference} när du betalar.",
    "invoice.paid": "Fakturan är betald; det finns inget att betala.",
    "invoice.not_charged.below_minimum": "Beloppet som ska betalas är lägre än "
    "det minsta belopp vi kan dra från ett kort, så ditt kort har inte debiterats.",
    "invoice.not_charged.above_maximum": "Beloppet som ska betalas är högre än "
    "det högsta belopp vi kan dra från ett kort, så ditt kort har inte debiterats.",
    "invoice.not_charged.not_increment": "Beloppet som ska betalas kan inte dras "
    "från ett kort, så ditt kort har inte debiterats.",
    "receipt.subject": "Kvitto {number} från {account}",
    "receipt.intro": "Tack för din betalning på {amount}.",
    "receipt.number": "Kvittonummer",
    "receipt.date": "Betalningsdatum",
    "receipt.method": "Betalat med",
    "receipt.card": "{brand} som slutar på {last4}",
    "receipt.card_unknown": "kort",
    "receipt.settled_one": "Betald faktura",
    "receipt.settled_other": "Betalda fakturor",
    "receipt.credit_label": "Tillgodo",
    "receipt.credit": "Resterande {amount} står som tillgodohavande hos {account}.",
    "receipt.total": "Totalt betalt",
    "action.subject": "Bekräfta din betalning till {account}",
    "action.intro": "Din bank behöver att du bekräftar kortbetalningen på "
    "{amount} innan den kan genomföras.",
    "action.link": "Bekräfta betalningen här: {url}",
    "action.button": "Bekräfta betalningen",
    "action.no_link": "Öppna din betalningsöversikt hos {account} för att "
    "bekräfta den.",
    "failed.subject": "Din betalning till {account} gick inte igenom",
    "failed.intro": "Vi försökte dra {amount} från ditt kort, men betalningen nekades.",
    "failed.reason": "Orsak: {reason}",
    "failed.next_one": "Fakturan är fortfarande obetald. Du kan betala den från "
    "din betalningsöversikt, med samma kort eller ett annat.",
    "failed.next_other": "Fakturorna är fortfarande obetalda. Du kan betala dem "
    "från din betalningsöversikt, med samma kort eller ett annat.",
    "decline.generic": "banken nekade betalningen",
    "decline.insufficient_funds": "otillräckligt saldo på kontot",
    "decline.expired_card": "kortet har gått ut",
    "decline.limit": "kortets beloppsgräns har nåtts",
    "decline.processing_error": "ett tillfälligt fel hos banken; försök igen senare",
    "decline.not_charged": "kortet kunde inte debiteras",
    "summary.subject": "Daglig sammanfattning för {account}, {date}",
    "summary.intro": "Översikt över den automatiska faktureringen {date} för "
    "{account}.",
    "summary.nothing": "Inget att rapportera: inga fakturor ställdes ut och inga "
    "kort debiterades.",
    "summary.issued": "Utställda fakturor ({count})",
    "summary.issued_total": "Summa fakturerat",
    "summary.charges": "Kortbetalningar ({count})",
    "summary.skipped": "Hoppades över under paus ({count})",
    "summary.ended": "Återkommande fakturor som har avslutats ({count})",
    "summary.failed": "Kunde inte ställas ut ({count})",
    "summary.failed_note": "Dessa återkommande fakturor lämnades orörda och "
    "försöks igen vid nästa körning. Rätta dem eller avsluta dem.",
    "summary.failed_reference_note": "Fakturanumren ryms inte längre i kontots "
    "fasta längd på betalningsreferensen. Dessa återkommande fakturor behöver "
    "inte rättas: ändra kontots referensschema till en längre längd, enligt "
    "avtalet med banken, så ställs de ut vid nästa körning.",
    "summary.col.problem": "Orsak",
    "summary.failed_details": "Detaljer (på engelska):",
    "summary.unreadable": "Lagrade poster som inte kunde läsas ({count})",
    "summary.unreadable_note": "Dessa poster lades åt sidan och lämnades "
    "orörda: inget drogs, återbetalades eller ändrades för dem. Rätta varje rad "
    "till det recurbill skriver, eller återställ den från en säkerhetskopia, så "
    "hanteras den vid nästa körning.",
    "summary.problem.other": "Ogiltiga uppgifter",
    "summary.problem.amount": "Ogiltigt belopp",
    "summary.problem.unknown_currency": "Okänd valuta",
    "summary.problem.currencies": "Belopp i olika valutor",
    "summary.problem.vat": "Ogiltig momssats eller undantagsskäl",
    "summary.problem.lines": "Ogiltiga fakturarader",
    "summary.problem.schedule": "Ogiltigt schema",
    "summary.problem.reference": "Ogiltig betalningsreferens",
    "summary.problem.reference_length": "Fakturanumret är för långt för "
    "betalningsreferensen",
    "summary.problem.record": "Ogiltiga kund- eller kontouppgifter",
    "summary.problem.unreadable": "Lagrade uppgifter kunde inte läsas",
    "summary.decline.insufficient_funds": "otillräckligt saldo",
    "summary.decline.expired_card": "kortet har gått ut",
    "summary.decline.limit": "beloppsgränsen är nådd",
    "summary.decline.processing_error": "tillfälligt fel hos banken",
    "summary.decline.not_charged": "nådde inte banken",
    "summary.col.invoice": "Faktura",
    "summary.col.customer": "Kund",
    "summary.col.date": "Datum",
    "summary.col.amount": "Belopp",
    "summary.col.result": "Resultat",
    "summary.col.template": "Återkommande faktura",
    "summary.total_succeeded": "Betalda",
    "summary.total_declined": "Nekade",
    "summary.total_requires_action": "Väntar på kundens bekräftelse",
    "summary.total_pending": "Inte skickade än",
    "summary.uncharged": "Inte dragna från kort ({count})",
    "summary.uncharged_note": "Dessa belopp kan inte dras från kort. Varje "
    "faktura skickades därför till kunden via e-post, att betala senast "
    "förfallodagen (eller snarast, om den har passerat) med "
    "betalningsreferensen. De dras inte automatiskt från kortet.",
    "summary.uncharged_total": "Skickat som faktura",
    "summary.uncharged.below_minimum": "Under lägsta belopp för kort",
    "summary.uncharged.above_maximum": "Över högsta belopp för kort",
    "summary.uncharged.not_increment": "Beloppet kan inte dras från kort",
    "summary.uncharged.retry": "{reason}; delbetald",
    "summary.more": "… och {count} till, som inte listas här.",
    "status.pending": "Väntar",
    "status.succeeded": "Betald",
    "status.declined": "Nekad",
    "status.requires_action": "Kunden måste bekräfta",
    "status.processing": "Behandlas",
    "status.failed_unknown": "Okänt utfall, kontrolleras",
    "status.canceled": "Avbruten",
}

IS_IS: dict[str, str] = {
    "greeting": "Góðan dag {name},",
    "signoff": "Með kveðju\n{account}",
    "label.invoice": "Reikningur",
    "label.invoices": "Reikningar",
    "label.amount": "Upphæð",
    "invoice.subject": "Reikningur {number} frá {account}",
    "invoice.intro": "Hér er reikningur {number} frá {account}.",
    "invoice.number": "Reikningsnúmer",
    "invoice.issue_date": "Útgáfudagur",
    "invoice.due_date": "Gjalddagi",
    "invoice.reference.kid": "KID-númer",
    "invoice.reference.ocr": "OCR-númer",
    "invoice.reference.other": "Tilvísun",
    "invoice.col.description": "Lýsing",
    "invoice.col.quantity": "Magn",
    "invoice.col.unit_price": "Einingarverð",
    "invoice.col.vat": "VSK",
    "invoice.col.amount": "Upphæð",
    "invoice.price_per": "{price} fyrir {base}",
    "invoice.line_allowance": "Afsláttur",
    "invoice.line_charge": "Álag",
    "invoice.line_allowance_percent": "Afsláttur {percentage} af {base}",
    "invoice.line_charge_percent": "Álag {percentage} af {base}",
    "invoice.allowance": "Afsláttur af reikningnum",
    "invoice.charge": "Álag á reikninginn",
    "invoice.allowance_percent": "Afsláttur af reikningnum, {percentage} af {base}",
    "invoice.charge_percent": "Álag á reikninginn, {percentage} af {base}",
    "invoice.net_total": "Samtals án VSK",
    "invoice.vat": "VSK",
    "invoice.vat_rate": "VSK {rate} af {base}",
    "invoice.total": "Samtals með VSK",
    "invoice.settled": "Þegar greitt eða kreditfært",
    "invoice.amount_due": "Til greiðslu",
    "invoice.pay_by_transfer": "Vinsamlegast greiddu {amount} í síðasta lagi "
    "{due_date}.",
    "invoice.pay_now": "Vinsamlegast greiddu {amount} sem fyrst; gjalddagi "
    "reikningsins var {due_date}.",
    "invoice.use_reference.kid": "Notaðu KID-númerið {reference} þegar þú greiðir.",
    "invoice.use_reference.ocr": "Notaðu OCR-númerið {reference} þegar þú greiðir.",
    "invoice.use_reference.other": "Notaðu tilvísunina {reference} þegar þú greiðir.",
    "invoice.paid": "Reikningurinn er greiddur; ekkert er til greiðslu.",
    "invoice.not_charged.below_minimum": "Upphæðin til greiðslu er lægri en "
    "lægsta upphæð sem hægt er að greiða með korti og því hefur kortið þitt ekki "
    "verið skuldfært.",
    "invoice.not_charged.above_maximum": "Upphæðin til greiðslu er hærri en "
    "hæsta upphæð sem hægt er að greiða með korti og því hefur kortið þitt ekki "
    "verið skuldfært.",
    "invoice.not_charged.not_increment": "Ekki er hægt að greiða þessa upphæð "
    "með korti og því hefur kortið þitt ekki verið skuldfært.",
    "receipt.subject": "Kvittun {number} frá {account}",
    "receipt.intro": "Takk fyrir greiðsluna að upphæð {amount}.",
    "receipt.number": "Kvittunarnúmer",
    "receipt.date": "Greiðsludagur",
    "receipt.method": "Greitt með",
    "receipt.card": "{brand} sem endar á {last4}",
    "receipt.card_unknown": "kort",
    "receipt.settled_one": "Greiddur reikningur",
    "receipt.settled_other": "Greiddir reikningar",
    "receipt.credit_label": "Inneign",
    "receipt.credit": "Afgangurinn, {amount}, er skráður sem inneign þín hjá "
    "{account}.",
    "receipt.total": "Samtals greitt",
    "action.subject": "Staðfestu greiðsluna til {account}",
    "action.intro": "Bankinn þinn þarf að fá staðfestingu frá þér á "
    "kortagreiðslu að upphæð {amount} áður en hún fer í gegn.",
    "action.link": "Staðfestu greiðsluna hér: {url}",
    "action.button": "Staðfesta greiðsluna",
    "action.no_link": "Opnaðu greiðsluyfirlitið þitt hjá {account} til að "
    "staðfesta hana.",
    "failed.subject": "Greiðslan til {account} tókst ekki",
    "failed.intro": "Við reyndum að skuldfæra {amount} á kortið þitt en "
    "greiðslunni var hafnað.",
    "failed.reason": "Ástæða: {reason}",
    "failed.next_one": "Reikningurinn er enn ógreiddur. Þú getur greitt hann í "
    "greiðsluyfirlitinu, með sama korti eða öðru.",
    "failed.next_other": "Reikningarnir eru enn ógreiddir. Þú getur greitt þá í "
    "greiðsluyfirlitinu, með sama korti eða öðru.",
    "decline.generic": "bankinn hafnaði greiðslunni",
    "decline.insufficient_funds": "ekki næg innstæða",
    "decline.expired_card": "kortið er útrunnið",
    "decline.limit": "heimild kortsins er fullnýtt",
    "decline.processing_error": "tímabundin villa hjá bankanum; reyndu aftur síðar",
    "decline.not_charged": "ekki tókst að skuldfæra kortið",
    "summary.subject": "Dagleg samantekt fyrir {account}, {date}",
    "summary.intro": "Yfirlit yfir sjálfvirka reikningagerð {date} fyrir {account}.",
    "summary.nothing": "Ekkert að tilkynna: engir reikningar voru gefnir út og "
    "engin kort voru skuldfærð.",
    "summary.issued": "Útgefnir reikningar ({count})",
    "summary.issued_total": "Samtals reikningsfært",
    "summary.charges": "Kortagreiðslur ({count})",
    "summary.skipped": "Sleppt vegna hlés ({count})",
    "summary.ended": "Endurteknir reikningar sem eru útrunnir ({count})",
    "summary.failed": "Ekki tókst að gefa út ({count})",
    "summary.failed_note": "Þessum endurteknu reikningum var ekki breytt og "
    "reynt verður aftur í næstu keyrslu. Leiðréttu þá eða ljúktu þeim.",
    "summary.failed_reference_note": "Reikningsnúmerin rúmast ekki lengur í "
    "fastri lengd greiðslutilvísunar aðgangsins. Þessir endurteknu reikningar "
    "þarfnast ekki leiðréttingar: breyttu tilvísunarkerfi aðgangsins í lengri "
    "lengd, samkvæmt samningi við bankann, og þeir verða gefnir út í næstu "
    "keyrslu.",
    "summary.col.problem": "Ástæða",
    "summary.failed_details": "Nánari upplýsingar (á ensku):",
    "summary.unreadable": "Vistaðar færslur sem ekki tókst að lesa ({count})",
    "summary.unreadable_note": "Þessar færslur voru lagðar til hliðar og ekki "
    "breytt: ekkert var skuldfært, endurgreitt eða breytt vegna þeirra. "
    "Leiðréttu hverja röð í það sem recurbill skrifar, eða endurheimtu hana úr "
    "öryggisafriti, og næsta keyrsla afgreiðir hana.",
    "summary.problem.other": "Ógild gögn",
    "summary.problem.amount": "Ógild upphæð",
    "summary.problem.unknown_currency": "Óþekktur gjaldmiðill",
    "summary.problem.currencies": "Upphæðir í ólíkum gjaldmiðlum",
    "summary.problem.vat": "Ógilt VSK-þrep eða ástæða undanþágu",
    "summary.problem.lines": "Ógildar reikningslínur",
    "summary.problem.schedule": "Ógild tímaáætlun",
    "summary.problem.reference": "Ógild greiðslutilvísun",
    "summary.problem.reference_length": "Reikningsnúmerið er of langt fyrir "
    "greiðslutilvísunina",
    "summary.problem.record": "Ógildar upplýsingar um viðskiptavin eða aðgang",
    "summary.problem.unreadable": "Ekki tókst að lesa vistuð gögn",
    "summary.decline.insufficient_funds": "ekki næg innstæða",
    "summary.decline.expired_card": "kortið er útrunnið",
    "summary.decline.limit": "heimild kortsins er fullnýtt",
    "summary.decline.processing_error": "tímabundin villa hjá bankanum",
    "summary.decline.not_charged": "barst ekki til bankans",
    "summary.col.invoice": "Reikningur",
    "summary.col.customer": "Viðskiptavinur",
    "summary.col.date": "Dagsetning",
    "summary.col.amount": "Upphæð",
    "summary.col.result": "Niðurstaða",
    "summary.col.template": "Endurtekinn reikningur",
    "summary.total_succeeded": "Greitt",
    "summary.total_declined": "Hafnað",
    "summary.total_requires_action": "Bíður staðfestingar viðskiptavinar",
    "summary.total_pending": "Ekki sent enn",
    "summary.uncharged": "Ekki skuldfært á kort ({count})",
    "summary.uncharged_note": "Ekki er hægt að skuldfæra þessar upphæðir á "
    "kort. Hver reikningur var því sendur viðskiptavininum í tölvupósti, til "
    "greiðslu fyrir gjalddaga (eða sem fyrst, ef hann er liðinn) með "
    "greiðslutilvísuninni. Þeir verða ekki skuldfærðir sjálfkrafa á kortið.",
    "summary.uncharged_total": "Sent sem reikningar",
    "summary.uncharged.below_minimum": "Undir lágmarki fyrir kort",
    "summary.uncharged.above_maximum": "Yfir hámarki fyrir kort",
    "summary.uncharged.not_increment": "Upphæð sem ekki má skuldfæra á kort",
    "summary.uncharged.retry": "{reason}; greitt að hluta",
    "summary.more": "Línur sem ekki eru sýndar hér: {count}.",
    "status.pending": "Í bið",
    "status.succeeded": "Greitt",
    "status.declined": "Hafnað",
    "status.requires_action": "Viðskiptavinur þarf að staðfesta",
    "status.processing": "Í vinnslu",
    "status.failed_unknown": "Óþekkt niðurstaða, í athugun",
    "status.canceled": "Hætt við",
}

TEXTS: Mapping[str, Mapping[str, str]] = {
    "en_GB": EN_GB,
    "nb_NO": NB_NO,
    "sv_SE": SV_SE,
    "is_IS": IS_IS,
}
"""Every locale's texts, by the locale whose words they are."""
