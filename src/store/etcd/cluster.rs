//! The etcd `Cluster` service: the raft members of the k3rs store.

use super::backend::EtcdBackend;
use super::convert::{header, member, store_status};
use super::require_leader;
use etcd_client::proto::{
    PbClusterService, PbMember, PbMemberAddRequest, PbMemberAddResponse, PbMemberListRequest,
    PbMemberListResponse, PbMemberPromoteRequest, PbMemberPromoteResponse, PbMemberRemoveRequest,
    PbMemberRemoveResponse, PbMemberUpdateRequest, PbMemberUpdateResponse, PbResponseHeader,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct ClusterService {
    pub backend: Arc<dyn EtcdBackend>,
}

impl ClusterService {
    async fn list(&self) -> Result<(Option<PbResponseHeader>, Vec<PbMember>), Status> {
        let members = self.backend.members().await.map_err(store_status)?;
        Ok((
            header(&self.backend.status().header),
            members.into_iter().map(member).collect(),
        ))
    }
}

#[tonic::async_trait]
impl PbClusterService for ClusterService {
    async fn member_add(
        &self,
        request: Request<PbMemberAddRequest>,
    ) -> Result<Response<PbMemberAddResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        let req = request.into_inner();
        // etcd learns a new member's name when it starts; so does k3rs.
        let added = self
            .backend
            .member_add(String::new(), req.peer_ur_ls, req.is_learner)
            .await
            .map_err(store_status)?;
        let (header, members) = self.list().await?;
        Ok(Response::new(PbMemberAddResponse {
            header,
            member: Some(member(added)),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        self.backend
            .member_remove(request.into_inner().id)
            .await
            .map_err(store_status)?;
        let (header, members) = self.list().await?;
        Ok(Response::new(PbMemberRemoveResponse { header, members }))
    }

    async fn member_update(
        &self,
        _request: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        // Peer URLs are fixed at join time in k3rs: remove and re-add the member instead.
        Err(Status::unimplemented(
            "etcdserver: member update is not supported by k3rs",
        ))
    }

    async fn member_list(
        &self,
        request: Request<PbMemberListRequest>,
    ) -> Result<Response<PbMemberListResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        let (header, members) = self.list().await?;
        Ok(Response::new(PbMemberListResponse { header, members }))
    }

    async fn member_promote(
        &self,
        request: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        self.backend
            .member_promote(request.into_inner().id)
            .await
            .map_err(store_status)?;
        let (header, members) = self.list().await?;
        Ok(Response::new(PbMemberPromoteResponse { header, members }))
    }
}
