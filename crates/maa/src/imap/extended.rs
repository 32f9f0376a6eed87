//! Commands imap-codec refuses and `ext` parses (LIST-EXTENDED, SEARCH
//! RETURN, CREATE with USE, MULTIAPPEND), run like any other command: state
//! checks, the work, then announcements and the tagged reply.

use imap_next::imap_types::command::CommandBody;
use imap_next::imap_types::core::Tag;
use imap_next::imap_types::response::Status;

use super::conn::Connection;
use super::ext::ExtCommand;
use super::reply::{bad, cannot, login_first, no, not_selected, useattr};
use super::session::{Ctx, Session, Step};
use super::{ImapError, folders, names, search};
use crate::mda::{Mda, Role};

impl<M: Mda> Session<M> {
    /// Run a command `ext::parse` read.
    pub(super) async fn extended(
        &mut self,
        conn: &mut Connection,
        cmd: ExtCommand,
    ) -> Result<Step, ImapError> {
        let tag = match &cmd {
            ExtCommand::List(l) => l.tag.clone(),
            ExtCommand::Search(s) => s.command.tag.clone(),
            ExtCommand::Create(c) => c.tag.clone(),
            ExtCommand::MultiAppend { tag, .. } => tag.clone(),
        };
        let Some(user) = self.user.clone() else {
            conn.status(login_first(tag));
            return Ok(Step::Continue);
        };
        let (status, sync) = self.run_extended(conn, &user, tag, cmd).await?;
        Ok(self.reply(conn, status, sync).await)
    }

    async fn run_extended(
        &mut self,
        conn: &mut Connection,
        user: &str,
        tag: Tag<'static>,
        cmd: ExtCommand,
    ) -> Result<(Status<'static>, bool), ImapError> {
        let mut ctx = Ctx {
            mda: &self.ctx.mda,
            user,
            enabled: &mut self.enabled,
        };
        let status = match cmd {
            ExtCommand::List(l) => {
                let utf8 = ctx.enabled.utf8;
                let patterns = l
                    .patterns
                    .iter()
                    .map(|p| names::pattern_bytes(p).to_vec())
                    .collect();
                let mut opts = folders::ListOpts::plain(&l.reference, patterns, utf8);
                opts.select_subscribed = l.selection.subscribed;
                opts.select_special_use = l.selection.special_use;
                opts.recursive_match = l.selection.recursive_match;
                opts.return_subscribed = l.returns.subscribed;
                opts.status = l.returns.status;
                folders::list(&ctx, conn, tag, opts).await?
            }
            ExtCommand::Create(c) => {
                let mut role = None;
                for attr in &c.uses {
                    match Role::from_attribute(attr) {
                        Some(r) if role.is_none() => role = Some(r),
                        Some(_) => {
                            return Ok((
                                no(tag, Some(cannot()), "One special use per mailbox."),
                                true,
                            ));
                        }
                        None => {
                            return Ok((no(tag, Some(useattr()), "Unknown special use."), true));
                        }
                    }
                }
                folders::create(&ctx, tag, &c.mailbox, role).await
            }
            ExtCommand::MultiAppend { .. } => {
                no(tag, Some(cannot()), "MULTIAPPEND is not supported.")
            }
            ExtCommand::Search(s) => {
                if s.returns.save {
                    return Ok((bad(tag, "SEARCHRES is not supported."), true));
                }
                let Some(sel) = self.selected.as_mut() else {
                    return Ok((not_selected(tag), true));
                };
                let CommandBody::Search {
                    charset,
                    criteria,
                    uid,
                } = s.command.body
                else {
                    return Ok((bad(tag, "Invalid SEARCH."), true));
                };
                let ret = search::Return {
                    min: s.returns.min,
                    max: s.returns.max,
                    count: s.returns.count,
                    all: s.returns.all,
                };
                let req = search::SearchReq {
                    charset: charset.as_ref(),
                    criteria: criteria.as_ref(),
                    uid,
                    ret: Some(ret),
                };
                let status = search::search(&mut ctx, conn, sel, tag, req).await?;
                return Ok((status, uid));
            }
        };
        Ok((status, true))
    }
}
