//! Wire models of the SensePass API: the only place (besides the independent sandbox) where
//! SensePass's field names and JSON shapes are written down.

pub mod device;
pub mod init;
pub mod requests;
pub mod settlement;
pub mod subscription;
pub mod transaction;
pub(crate) mod wire;

pub use device::{
    mask_secret, CreateDeviceRequest, CustomerInputAnswer, CustomerInputQuestion,
    CustomerInputRequest, CustomerInputResetRequest, CustomerInputResetResponse,
    CustomerInputResponse, Device, MatchRequest,
};
pub use init::{
    mask_card, CallbackMethod, CreditCard, EmailConfig, EmailPaymentRequest, InitRequest, Invoice,
    PaymentDetails, Receipt, ReceiptInfo, ReceiptNotifications, SubscriptionTerms,
};
pub use requests::{
    CancelResponse, CardDetails, CommitResponse, CreditRequest, FetchTransactions, Filter,
    FilterOperator, ListStatus, Pagination, PayRequest, PayResponse, ReadyForPaymentRequest,
    RefundRequest, RefundResponse, SdkCommitRequest, SdkCommitResponse, SdkMethodType,
    UpdateRequest,
};
pub use settlement::{SettlementReport, SettlementsPage, SettlementsRequest};
pub use subscription::{Subscription, SubscriptionStatus, UpdateSubscriptionRequest};
pub use transaction::{
    Confirmation, ConsumerPage, DeclineReason, PageInfo, PaymentCommit, Settlement, SourceProvider, Transaction,
    TransactionNumber, TransactionPage, TransactionsPage,
};
