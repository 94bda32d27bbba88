//! Endpoint macros: bounded argument decoding with the true Candid signature, and the
//! operations endpoints identical in every OHMS canister.

/// Defines an `update` or `query` endpoint with one argument decoded under
/// [`decode`](crate::decode)'s quotas, whose reply is encoded by [`reply`](crate::reply) (the
/// type part once per canister instance). A refused argument is answered with the endpoint's typed
/// reply ([`RefusedReply`](crate::decode::RefusedReply)): `Err(Error::InvalidArgument)` naming
/// the argument, before the body runs. An endpoint that takes bulk bytes (an upload chunk) is
/// marked `bulk` and decoded within [`BULK_DECODING_QUOTA`](crate::decode::BULK_DECODING_QUOTA).
///
/// ic-cdk's `decode_with` would export the argument as `blob`; so the entry point is hidden from
/// ic-cdk's Candid export, and a signature-only function in a module of the same name registers
/// the real signature for `export_candid!`.
///
/// ```ignore
/// ohms_ops::endpoint! {
///     /// Makes a principal an administrator. Administrators only.
///     update add_admin(principal: Principal) -> Result<(), Error> {
///         ohms_ops::access::add_admin(&IcEnv::capture(), principal)
///     }
/// }
/// ohms_ops::endpoint! {
///     bulk update upload_chunk(chunk: Chunk) -> Result<(), Error> { … }
/// }
/// ohms_ops::endpoint! {
///     async update subscribe(args: SubscribeArgs) -> Result<Purchase, Error> { … .await }
/// }
/// ```
#[macro_export]
macro_rules! endpoint {
    (@impl $decoder:tt, $(#[$doc:meta])* $kind:ident $name:ident ($arg:ident : $arg_ty:ty) -> $ret:ty $body:block) => {
        $(#[$doc])*
        #[::ic_cdk::$kind(hidden = true, decode_with = $decoder, manual_reply = true)]
        fn $name($arg: ::std::result::Result<$arg_ty, ::std::string::String>) {
            fn body($arg: $arg_ty) -> $ret $body
            let reply: $ret = match $arg {
                Ok(value) => body(value),
                Err(reason) => $crate::endpoint!(@refused $arg, $ret, reason),
            };
            $crate::reply::reply(&reply);
        }
        $crate::endpoint!(@signature $(#[$doc])* $kind $name ($arg_ty) -> $ret);
    };
    (@impl_async $decoder:tt, $(#[$doc:meta])* $kind:ident $name:ident ($arg:ident : $arg_ty:ty) -> $ret:ty $body:block) => {
        $(#[$doc])*
        #[::ic_cdk::$kind(hidden = true, decode_with = $decoder, manual_reply = true)]
        async fn $name($arg: ::std::result::Result<$arg_ty, ::std::string::String>) {
            async fn body($arg: $arg_ty) -> $ret $body
            let reply: $ret = match $arg {
                Ok(value) => body(value).await,
                Err(reason) => $crate::endpoint!(@refused $arg, $ret, reason),
            };
            $crate::reply::reply(&reply);
        }
        $crate::endpoint!(@signature $(#[$doc])* $kind $name ($arg_ty) -> $ret);
    };
    (@refused $arg:ident, $ret:ty, $reason:ident) => {
        <$ret as $crate::decode::RefusedReply>::refused(
            ::ohms_types::Error::invalid_argument(stringify!($arg), $reason),
        )
    };
    (@signature $(#[$doc:meta])* $kind:ident $name:ident ($arg_ty:ty) -> $ret:ty) => {
        #[doc(hidden)]
        #[allow(dead_code, unused_imports)]
        mod $name {
            use super::*;
            $(#[$doc])*
            #[::candid::candid_method($kind)]
            fn $name(_: $arg_ty) -> $ret {
                unreachable!("signature only: registers the Candid type of the endpoint")
            }
        }
    };
    ($(#[$doc:meta])* async $kind:ident $name:ident ($arg:ident : $arg_ty:ty) -> $ret:ty $body:block) => {
        $crate::endpoint!(@impl_async "ohms_ops::decode::argument", $(#[$doc])* $kind $name ($arg: $arg_ty) -> $ret $body);
    };
    ($(#[$doc:meta])* bulk $kind:ident $name:ident ($arg:ident : $arg_ty:ty) -> $ret:ty $body:block) => {
        $crate::endpoint!(@impl "ohms_ops::decode::bulk_argument", $(#[$doc])* $kind $name ($arg: $arg_ty) -> $ret $body);
    };
    ($(#[$doc:meta])* $kind:ident $name:ident ($arg:ident : $arg_ty:ty) -> $ret:ty $body:block) => {
        $crate::endpoint!(@impl "ohms_ops::decode::argument", $(#[$doc])* $kind $name ($arg: $arg_ty) -> $ret $body);
    };
}

/// Exports `add_admin`, `remove_admin`, `list_admins`, `pause`, `unpause`, `clear_lock`,
/// `ops_status`, `audit_log` and `http_request` from the canister that invokes it. Each captures
/// its caller once, at entry ([`IcEnv::capture`](crate::IcEnv::capture)).
///
/// ```ignore
/// ohms_ops::export_ops_endpoints!(canister = "model_repo", metrics = crate::metrics::encode);
/// ```
/// `metrics` (optional) names a [`DomainMetrics`](crate::metrics::DomainMetrics) function that
/// appends the canister's own figures to `/metrics`.
#[macro_export]
macro_rules! export_ops_endpoints {
    (canister = $canister:literal) => {
        $crate::export_ops_endpoints!(@impl $canister, None);
    };
    (canister = $canister:literal, metrics = $domain:path) => {
        $crate::export_ops_endpoints!(@impl $canister, Some($domain as $crate::metrics::DomainMetrics));
    };
    (@impl $canister:literal, $domain:expr) => {
        $crate::endpoint! {
            /// Makes a principal an administrator of this canister. Administrators only.
            update add_admin(principal: ::candid::Principal) -> ::std::result::Result<(), ::ohms_types::Error> {
                $crate::access::add_admin(&$crate::IcEnv::capture(), principal)
            }
        }

        $crate::endpoint! {
            /// Takes the administrator role from a principal. Administrators only.
            update remove_admin(principal: ::candid::Principal) -> ::std::result::Result<(), ::ohms_types::Error> {
                $crate::access::remove_admin(&$crate::IcEnv::capture(), principal)
            }
        }

        $crate::endpoint! {
            /// Administrators added besides the controllers. Administrators only.
            query list_admins(
                page: ::ohms_types::Page
            ) -> ::std::result::Result<::ohms_types::Paged<::candid::Principal>, ::ohms_types::Error> {
                $crate::access::list_admins(&$crate::IcEnv::capture(), page)
            }
        }

        $crate::endpoint! {
            /// Refuses state-changing user calls until `unpause`. Administrators only.
            update pause(reason: String) -> ::std::result::Result<(), ::ohms_types::Error> {
                $crate::pause::pause(&$crate::IcEnv::capture(), reason)
            }
        }

        /// Lifts a pause. Administrators only.
        #[::ic_cdk::update]
        fn unpause() -> ::std::result::Result<(), ::ohms_types::Error> {
            $crate::pause::unpause(&$crate::IcEnv::capture())
        }

        $crate::endpoint! {
            /// Releases a principal's lock that a faulted call left behind (its calls get Busy
            /// with none in progress). Administrators only; audited.
            update clear_lock(principal: ::candid::Principal) -> ::std::result::Result<(), ::ohms_types::Error> {
                $crate::lock::clear(&$crate::IcEnv::capture(), principal)
            }
        }

        /// Pause state, siblings and sizes, for dashboards.
        #[::ic_cdk::query]
        fn ops_status() -> ::ohms_types::OpsStatus {
            $crate::ops_status(&$crate::IcEnv::capture())
        }

        $crate::endpoint! {
            /// A page of the audit log of administrative actions, oldest first. Administrators only.
            query audit_log(
                page: ::ohms_types::Page
            ) -> ::std::result::Result<::ohms_types::Paged<::ohms_types::AuditEntry>, ::ohms_types::Error> {
                $crate::audit::page(&$crate::IcEnv::capture(), page)
            }
        }

        $crate::endpoint! {
            /// `/metrics` in Prometheus text format for the HTTP gateway; other paths are 404.
            query http_request(request: ::ohms_types::HttpRequest) -> ::ohms_types::HttpResponse {
                $crate::metrics::http_request(&$crate::IcEnv::capture(), $canister, &request, $domain)
            }
        }
    };
}
