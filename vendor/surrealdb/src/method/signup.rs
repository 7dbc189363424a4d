use std::borrow::Cow;
use std::future::IntoFuture;

use crate::conn::ctx;
use crate::method::{BoxFuture, OnceLockExt};
use crate::opt::auth::Token;
use crate::types::Value;
use crate::{Connection, Result, Surreal};

/// Returned by [`Surreal::signup`](crate::Surreal::signup) for `DEFINE ACCESS … SIGNUP` flows.
#[derive(Debug)]
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Signup<'r, C: Connection> {
	pub(super) client: Cow<'r, Surreal<C>>,
	pub(super) credentials: Value,
}

impl<C> Signup<'_, C>
where
	C: Connection,
{
	/// Converts to an owned type which can easily be moved to a different
	/// thread
	pub fn into_owned(self) -> Signup<'static, C> {
		Signup {
			client: Cow::Owned(self.client.into_owned()),
			..self
		}
	}
}

impl<'r, Client> IntoFuture for Signup<'r, Client>
where
	Client: Connection,
{
	type Output = Result<Token>;
	type IntoFuture = BoxFuture<'r, Self::Output>;

	fn into_future(self) -> Self::IntoFuture {
		let Signup {
			client,
			credentials,
			..
		} = self;
		Box::pin(async move {
			let router = client.inner.router.extract()?;
			let credentials =
				credentials.into_object().map_err(|e| crate::Error::internal(e.to_string()))?;
			let token = router.engine.signup(ctx(client.session_id), credentials).await?;
			Ok(token.into())
		})
	}
}
