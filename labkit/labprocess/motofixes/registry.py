"""The registry: every change the lab makes to moto, botocore and awscli, one record each (see
labkit/labprocess/motofixes/__init__.py for what a record holds and how it is applied).
"""

from __future__ import annotations

from labkit.labprocess.motofixes import (
    authorization,
    buckets,
    decisions,
    fidelity,
    iam_delay,
    launch,
    role_credentials,
    simulation,
    speed,
    tags,
    validation,
    warm_aws,
)
from labkit.labprocess.motofixes.record import CLI, LAB, Fix, Target

# -- the records ----------------------------------------------------------------------------------
IAM_BACKEND, EC2_INSTANCES = "moto.iam.models", "moto.ec2.models.instances"
IAM_SUBCLASS, EC2_SUBCLASS = "IAM backend subclass", "EC2 backend subclass"  # the seams (subclass.py)
MIDDLEWARE = "middleware"  # the seam of middleware.py
INSTALLS_IAM = Target(IAM_BACKEND, "iam_backends.backend")  # the class moto instantiates: the subclass's place
INSTALLS_EC2 = Target("moto.ec2.models", "ec2_backends.backend")

REGISTRY: tuple[Fix, ...] = (
    Fix(
        name="botocore_data_read_once",
        kind="speed",
        aws="(speed) the installed botocore's data files do not change while a process runs",
        dependency="botocore decodes them again for every new session (0.15 s each for EC2's model and the "
        "endpoints); moto makes four sessions while it starts, the warm aws one per command",
        targets=(Target("botocore.loaders", "JSONFileLoader._load_file", ("self", "full_path", "open_method")),
                 Target("botocore.loaders", "logger")),
        apply=speed.botocore_data_read_once,
        seam="setattr: every botocore session makes its own JSONFileLoader by name; no seam reaches the file reads",
        proved_by=("tests/test_backends.py::test_botocore_data_is_decoded_once_per_process",
                   "tests/test_cliserver.py::test_with_debug_the_warm_aws_logs_what_a_fresh_one_logs"),
        processes=(LAB, CLI),
        early=True,
    ),
    Fix(
        name="instance_type_offerings_of_the_labs_region",
        kind="speed",
        aws="(speed) the lab lives in us-east-1; DescribeInstanceTypeOfferings answers for it",
        dependency="moto decodes ~100 offering files, one per region and location type, when its EC2 models "
        "are imported (0.8 s of a cold start)",
        targets=(Target("moto.utilities.utils", "load_resource", ("resource",)),),
        apply=speed.only_the_labs_region_of_instance_types,
        seam="setattr: moto calls load_resource while its EC2 models are imported, before any object exists",
        proved_by=("tests/test_motofixes.py::test_the_lab_offers_instance_types_in_its_region",),
        early=True,
    ),
    Fix(
        name="default_subnet_address",
        kind="fidelity",
        aws="an instance launched without a subnet gets an address of its AZ's default subnet (172.31.x.x)",
        dependency="moto places its network interface in the default subnet but gives it a random 10.x address",
        targets=(Target(EC2_INSTANCES, "Instance.prep_nics", ("self", "nic_spec", "private_ip")),
                 Target("moto.ec2.models.subnets", "SubnetBackend.get_default_subnets", ("self",)),
                 Target("moto.ec2.models.subnets", "Subnet.get_available_subnet_ip", ("self", "instance"))),
        apply=fidelity.default_subnet_address,
        seam="setattr: Instance is a model class run_instances makes by name; no backend method picks the address",
        proved_by=("tests/test_backends.py::test_facts_of_an_instance_without_a_role",
                   "tests/test_backends.py::test_instances_in_one_subnet_get_successive_addresses"),
        upstream="EC2 RunInstances without SubnetId: the instance's PrivateIpAddress is a random 10.x address, "
        "while its network interface is in the default subnet (172.31.0.0/16 in the default VPC). AWS gives "
        "an address of that subnet. Fix: in Instance.prep_nics, when no subnet, NIC or address is given, take "
        "the address from the AZ's default subnet.",
    ),
    Fix(
        name="al2023_requires_imdsv2",
        kind="fidelity",
        aws="Amazon Linux 2023's AMIs have ImdsSupport v2.0: an instance launched from one requires IMDSv2 "
        "(HttpTokens required) with a hop limit of 2, unless the launch's own MetadataOptions say otherwise",
        dependency="moto's AMIs have no ImdsSupport, and every instance launches with HttpTokens optional and a hop "
        "limit of 1: a plain curl gets the role's credentials on a fresh AL2023 instance, which AWS refuses with 401",
        targets=(Target(EC2_INSTANCES, "InstanceBackend.run_instances",
                        ("self", "image_id", "count", "user_data", "security_group_names")),
                 Target("moto.ec2.models.amis", "AmiBackend.__init__", ("self",)), INSTALLS_EC2),
        apply=launch.al2023_requires_imdsv2,
        seam=EC2_SUBCLASS,
        proved_by=("tests/test_imds.py::test_a_fresh_al2023_instance_refuses_imdsv1_as_aws_does",
                   "tests/test_imds.py::test_a_launch_that_allows_imdsv1_keeps_what_it_asked_for"),
        required=True,
        upstream="EC2: AMIs registered with ImdsSupport v2.0 (all Amazon Linux 2023 AMIs) launch instances with "
        "MetadataOptions HttpTokens=required and HttpPutResponseHopLimit=2 unless RunInstances gives its own "
        "(EC2 User Guide, 'Configure the AMI'). moto's bundled AMIs carry no ImdsSupport and every instance gets "
        "optional/1. Fix: load ImdsSupport with the AMIs (DescribeImages, DescribeImageAttribute imdsSupport, "
        "RegisterImage's ImdsSupport) and apply it in run_instances after the request's own MetadataOptions.",
    ),
    Fix(
        name="client_token_makes_launch_idempotent",
        kind="fidelity",
        aws="RunInstances repeated with the same ClientToken launches nothing new and answers with the instances of "
        "the first request",
        dependency="moto ignores the token and launches again (notebook 05's launch cell, run twice, made two "
        "legacy-servers, and `%%instance legacy-server` no longer knew which)",
        targets=(Target(EC2_INSTANCES, "InstanceBackend.run_instances",
                        ("self", "image_id", "count", "user_data", "security_group_names")),
                 Target(EC2_INSTANCES, "Reservation"),
                 Target("moto.ec2.models.iam_instance_profile", "IamInstanceProfileAssociationBackend."
                        "associate_iam_instance_profile", ("self", "instance_id")), INSTALLS_EC2),
        apply=launch.client_token_makes_launch_idempotent,
        seam=EC2_SUBCLASS,
        proved_by=("tests/test_backends.py::test_a_launch_repeated_with_its_client_token_launches_nothing_new",),
        upstream="EC2 RunInstances with a ClientToken already used: AWS answers with the first request's "
        "reservation and launches nothing (EC2 API reference, 'Ensure idempotency'); moto launches again. "
        "Fix: in run_instances, return the reservation whose instances carry the same client_token.",
    ),
    Fix(
        name="started_instances_get_new_credentials",
        kind="fidelity",
        aws="An instance stopped and started again gets new role credentials from its metadata service (the way to "
        "give an instance fresh credentials at once, after its role's older sessions were revoked: IAM User Guide, "
        "\"Revoke IAM role temporary security credentials\", new sessions are not denied)",
        dependency="moto keeps no trace of a start, so the lab would hand the instance its old session until it "
        "expires",
        targets=(Target("moto.ec2.models.instances", "InstanceBackend.start_instances", ("self", "instance_ids")),
                 Target("moto.ec2.models.instances", "InstanceBackend.get_instance", ("self", "instance_id")),
                 INSTALLS_EC2),
        apply=launch.started_instances_get_new_credentials,
        seam=EC2_SUBCLASS,
        proved_by=("tests/test_decisions.py::test_after_a_revocation_a_stop_and_start_gives_the_instance_new_credentials",),
        upstream="(none: what the lab's metadata service needs, not a moto bug) StartInstances leaves no mark on the "
        "instance a caller could compare; the lab counts starts.",
    ),
    Fix(
        name="metadata_options_keep_what_is_not_named",
        kind="fidelity",
        aws="ModifyInstanceMetadataOptions changes only the options it names",
        dependency="moto replaces them all: HttpTokens=required alone also blanks HttpEndpoint, and the metadata "
        "service of the instance is then off (notebook 05)",
        targets=(Target(EC2_INSTANCES, "InstanceBackend.modify_instance_metadata_options",
                        ("self", "instance_id", "http_tokens", "hop_limit", "http_endpoint", "http_protocol",
                         "metadata_tags")),
                 Target(EC2_INSTANCES, "InstanceBackend.get_instance", ("self", "instance_id")), INSTALLS_EC2),
        apply=fidelity.metadata_options_keep_what_is_not_named,
        seam=EC2_SUBCLASS,
        proved_by=("tests/test_backends.py::test_metadata_options_change_only_what_is_named",
                   "tests/test_imds.py::test_required_tokens_refuse_imdsv1_with_401_but_the_cli_keeps_working"),
        required=True,
        upstream="EC2 ModifyInstanceMetadataOptions with only HttpTokens=required sets HttpEndpoint (and the "
        "hop limit, protocol and tags options) to None; AWS leaves every option the request does not name "
        "as it was. Fix: in InstanceBackend.modify_instance_metadata_options, default each argument to the "
        "instance's current value.",
    ),
    Fix(
        name="inactive_keys_are_refused",
        kind="fidelity",
        aws="a request signed with an Inactive access key is refused (InvalidClientTokenId)",
        dependency="moto looks the key up and ignores its status: a deactivated (leaked) key keeps working "
        "(notebook 01 revokes one)",
        targets=(Target("moto.iam.access_control", "IAMUserAccessKey.__init__",
                        ("self", "account_id", "partition", "access_key_id", "headers")),
                 Target("moto.iam.access_control", "CreateAccessKeyFailure"),
                 Target(IAM_BACKEND, "IAMBackend.list_users")),
        apply=fidelity.inactive_keys_are_refused,
        seam="setattr: moto's access control makes IAMUserAccessKey by name and accepts the key before moto answers",
        proved_by=("tests/test_lab.py::test_a_deactivated_key_is_refused_as_aws_refuses_it",),
        required=True,
        upstream="With authorization on (INITIAL_NO_AUTH_ACTION_COUNT), a request signed with an access key "
        "whose status is Inactive (UpdateAccessKey) is accepted; AWS refuses it with InvalidClientTokenId. "
        "Fix: IAMUserAccessKey raises CreateAccessKeyFailure for a key that is not Active.",
    ),
    Fix(
        name="ids_look_like_aws",
        kind="fidelity",
        aws="instance profile ids are AIPA… and user ids AIDA…, as role ids are AROA…",
        dependency="moto gives them 20 random lower-case characters, which iam/info and list-users show",
        targets=(Target(IAM_BACKEND, "IAMBackend.create_instance_profile", ("self", "name")),
                 Target(IAM_BACKEND, "IAMBackend.create_user", ("self", "region_name", "user_name")),
                 Target("moto.iam.utils", "generate_access_key_id_from_account_id",
                        ("account_id", "prefix", "total_length")), INSTALLS_IAM),
        apply=fidelity.ids_look_like_aws,
        seam=IAM_SUBCLASS,
        proved_by=("tests/test_motofixes.py::test_user_and_profile_ids_look_like_aws",),
        upstream="IAM CreateUser and CreateInstanceProfile return ids of 20 random lower-case characters; "
        "AWS's are 21 characters starting AIDA and AIPA (as moto already does for roles, AROA). Fix: "
        "generate them as role ids are generated.",
    ),
    Fix(
        name="access_keys_are_never_seeded",
        kind="isolation",
        aws="access key ids, secrets and session tokens are unguessable: two accounts never share one",
        dependency="moto draws key ids and secrets from its seeded random source, so two labs reset to the same "
        "checkpoint (the same seed) would hand out the same keys; session tokens come from os.urandom, out of "
        "the journal's reach. The lab draws all three afresh and journals them, to replay them after a crash",
        targets=(Target(IAM_BACKEND, "AccessKey.__init__", ("self", "user_name", "prefix", "account_id", "status")),
                 Target("moto.sts.models", "random_session_token")),
        apply=fidelity.access_keys_are_never_seeded,
        seam="setattr: AccessKey is a model class made by name; STS's token comes from a module function",
        proved_by=("tests/test_isolation.py::test_two_labs_at_the_same_checkpoint_share_ids_but_never_keys",),
        required=True,
    ),
    Fix(
        name="not_found_says_what_aws_says",
        kind="fidelity",
        aws="NoSuchEntity reads `The role with name X cannot be found.` and `Instance Profile X cannot be found.`",
        dependency="moto says `Role X not found` and `Instance profile X not found`",
        targets=(Target(IAM_BACKEND, "IAMBackend.get_role", ("self", "role_name")),
                 Target(IAM_BACKEND, "IAMBackend.get_instance_profile", ("self", "profile_name")),
                 Target("moto.iam.exceptions", "NotFoundException"), INSTALLS_IAM),
        apply=fidelity.not_found_says_what_aws_says,
        seam=IAM_SUBCLASS,
        proved_by=("tests/test_bad_input.py::test_a_role_or_profile_that_does_not_exist",),
        upstream="IAM GetRole and GetInstanceProfile for a name that does not exist: the NoSuchEntity message "
        "is `Role X not found` / `Instance profile X not found`; AWS says `The role with name X cannot be "
        "found.` / `Instance Profile X cannot be found.`.",
    ),
    Fix(
        name="trust_policy_must_be_json",
        kind="fidelity",
        aws="CreateRole with a trust policy that is not JSON: MalformedPolicyDocument, `This policy contains "
        "invalid Json`",
        dependency="moto creates the role",
        targets=(Target(IAM_BACKEND, "IAMBackend.create_role", ("self", "role_name", "assume_role_policy_document")),
                 Target("moto.iam.exceptions", "MalformedPolicyDocument"), INSTALLS_IAM),
        apply=fidelity.trust_policy_must_be_json,
        seam=IAM_SUBCLASS,
        proved_by=("tests/test_bad_input.py::test_a_trust_policy_that_is_not_json",),
        upstream="IAM CreateRole accepts an AssumeRolePolicyDocument that is not JSON; AWS refuses it with "
        "MalformedPolicyDocument `This policy contains invalid Json`.",
    ),
    # -- validation as IAM and EC2 validate (issue 23): validation.py ----------------------------------
    Fix(
        name="trust_policies_validated_as_iam_validates_them",
        kind="fidelity",
        aws="CreateRole and UpdateAssumeRolePolicy refuse a trust policy with a `Resource`, without a `Principal`, "
        "or naming a service that is none, with MalformedPolicyDocument: `Has prohibited field Resource`, `Missing "
        "required field Principal`, `Invalid principal in policy: \"SERVICE\":\"ec2\"`",
        dependency="moto's CreateRole takes any trust policy; its UpdateAssumeRolePolicy refuses a Resource (`Has "
        "prohibited field Resource.`) and a document that is not JSON (`Syntax errors in policy.`), and takes the rest",
        targets=(Target(IAM_BACKEND, "IAMBackend.create_role", ("self", "role_name", "assume_role_policy_document")),
                 Target(IAM_BACKEND, "IAMBackend.update_assume_role_policy", ("self", "role_name", "policy_document")),
                 Target("moto.iam.exceptions", "MalformedPolicyDocument"), INSTALLS_IAM),
        apply=validation.trust_policies_validated_as_iam_validates_them,
        seam=IAM_SUBCLASS,
        proved_by=("tests/test_validation.py::test_create_role_refuses_a_malformed_trust_policy",
                   "tests/test_validation.py::test_update_assume_role_policy_refuses_a_malformed_trust_policy",
                   "tests/test_validation.py::test_update_assume_role_policy_refuses_what_is_not_json"),
        upstream="IAM CreateRole accepts a trust policy whose statement has a Resource, has no Principal, or names "
        "`\"Service\": \"ec2\"`; AWS refuses each with MalformedPolicyDocument (`Has prohibited field Resource`, "
        "`Missing required field Principal`, `Invalid principal in policy: \"SERVICE\":\"ec2\"`). "
        "UpdateAssumeRolePolicy checks only the first. Fix: validate CreateRole's document with "
        "IAMTrustPolicyDocumentValidator, and add the Principal checks to it.",
    ),
    Fix(
        name="metadata_options_in_ec2s_ranges",
        kind="fidelity",
        aws="ModifyInstanceMetadataOptions and RunInstances' MetadataOptions refuse a hop limit outside 1 to 64, an "
        "HttpTokens other than optional or required, an HttpEndpoint other than enabled or disabled: "
        "InvalidParameterValue, `A value of 'sometimes' is not valid for HttpTokens. Specify either 'optional' or "
        "'required' and try again.`",
        dependency="moto stores whatever it is given: a hop limit of 0 or 65, HttpTokens `sometimes`, which the "
        "lab's metadata service, refusing only `required`, would answer without a token",
        targets=(Target(EC2_INSTANCES, "InstanceBackend.modify_instance_metadata_options",
                        ("self", "instance_id", "http_tokens", "hop_limit", "http_endpoint")),
                 Target(EC2_INSTANCES, "InstanceBackend.run_instances",
                        ("self", "image_id", "count", "user_data", "security_group_names")),
                 Target("moto.ec2.exceptions", "EC2ClientError"), INSTALLS_EC2),
        apply=validation.metadata_options_in_ec2s_ranges,
        seam=EC2_SUBCLASS,
        proved_by=("tests/test_validation.py::test_modify_instance_metadata_options_refuses_a_value_ec2_does_not_take",
                   "tests/test_validation.py::test_run_instances_refuses_metadata_options_ec2_does_not_take",
                   "tests/test_validation.py::test_http_tokens_sometimes_cannot_reopen_imdsv1"),
        upstream="EC2 ModifyInstanceMetadataOptions (and RunInstances' MetadataOptions) accept HttpPutResponseHopLimit "
        "0 or 65 and HttpTokens/HttpEndpoint values outside their enums. AWS refuses them with InvalidParameterValue "
        "(`A value of 'X' is not valid for HttpEndpoint. Specify either 'enabled' or 'disabled' and try again.`); "
        "the hop limit is 1 to 64 (EC2 API Reference).",
    ),
    Fix(
        name="removing_a_role_not_held_is_no_such_entity",
        kind="fidelity",
        aws="RemoveRoleFromInstanceProfile for a role the instance profile does not hold: NoSuchEntity (404)",
        dependency="moto calls list.remove on the profile's roles, which raises ValueError: its server answers an "
        "HTML page with status 500, which the CLI retries and cannot parse",
        targets=(Target(IAM_BACKEND, "IAMBackend.remove_role_from_instance_profile",
                        ("self", "profile_name", "role_name")),
                 Target(IAM_BACKEND, "IAMBackend.get_instance_profile", ("self", "profile_name")),
                 Target("moto.iam.exceptions", "NotFoundException"), INSTALLS_IAM),
        apply=validation.removing_a_role_not_held_is_no_such_entity,
        seam=IAM_SUBCLASS,
        proved_by=("tests/test_validation.py::test_removing_a_role_the_profile_does_not_hold_is_no_such_entity",),
        upstream="IAM RemoveRoleFromInstanceProfile with a role the instance profile does not hold raises ValueError "
        "(list.remove) and the server answers 500; AWS answers NoSuchEntity (404).",
    ),
    Fix(
        name="described_profile_is_the_profile",
        kind="fidelity",
        aws="DescribeInstances' IamInstanceProfile is the instance profile's ARN and id (AIPA…), also after "
        "ReplaceIamInstanceProfileAssociation",
        dependency="moto gives the association's id (iip-assoc-…) as the profile's, and keeps the first profile's "
        "ARN after a replace",
        targets=(Target("moto.ec2.models.iam_instance_profile",
                        "IamInstanceProfileAssociationBackend.associate_iam_instance_profile", ("self", "instance_id")),
                 Target("moto.ec2.models.iam_instance_profile",
                        "IamInstanceProfileAssociationBackend.replace_iam_instance_profile_association",
                        ("self", "association_id")), INSTALLS_EC2),
        apply=validation.described_profile_is_the_profile,
        seam=EC2_SUBCLASS,
        proved_by=("tests/test_validation.py::test_describe_instances_names_the_instance_profile_by_its_own_id_and_arn",),
        upstream="EC2 DescribeInstances: Instance.IamInstanceProfile.Id is the association id (iip-assoc-…); AWS "
        "gives the instance profile's id (AIPA…). After ReplaceIamInstanceProfileAssociation the instance keeps "
        "the old profile's ARN. Fix: set {Arn: profile.arn, Id: profile.id} on associate and on replace.",
    ),
    Fix(
        name="instance_filters_as_ec2_knows_them",
        kind="fidelity",
        aws="DescribeInstances answers the filters it documents, among them iam-instance-profile.arn and "
        "iam-instance-profile.id; another name is InvalidParameterValue, `The filter 'NAME' is invalid`",
        dependency="moto raises NotImplementedError for every filter it lacks, documented or not (iam-instance-"
        "profile.arn, a made-up name alike), which the lab answers 501",
        targets=(Target(EC2_INSTANCES, "InstanceBackend.describe_instances", ("self", "filters")),
                 Target(EC2_INSTANCES, "InstanceBackend.get_reservations_by_instance_ids",
                        ("self", "instance_ids", "filters")),
                 Target("moto.ec2.exceptions", "InvalidFilter"), INSTALLS_EC2),
        apply=validation.instance_filters_as_ec2_knows_them,
        seam=EC2_SUBCLASS,
        proved_by=("tests/test_validation.py::test_the_iam_instance_profile_filters_find_the_instances_with_that_profile",
                   "tests/test_validation.py::test_a_filter_describe_instances_does_not_know_is_invalid_parameter_value"),
        upstream="EC2 DescribeInstances: the filters iam-instance-profile.arn and iam-instance-profile.id raise "
        "NotImplementedError; so does a name EC2 does not know, which AWS refuses with InvalidParameterValue "
        "`The filter 'NAME' is invalid`.",
    ),
    # -- end of the validation block ------------------------------------------------------------------
    Fix(
        name="ec2_names_a_missing_profile",
        kind="fidelity",
        aws="EC2 refuses an instance profile it cannot find with InvalidParameterValue, `Value (X) for parameter "
        "iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name`",
        dependency="moto lets IAM's NoSuchEntity through EC2's API",
        targets=(Target("moto.ec2.utils", "filter_iam_instance_profiles",  # raises IAM's NotFoundException
                        ("account_id", "partition", "iam_instance_profile_arn", "iam_instance_profile_name")),
                 Target("moto.iam.exceptions", "NotFoundException")),
        apply=fidelity.ec2_names_a_missing_profile,
        seam=MIDDLEWARE,
        proved_by=("tests/test_bad_input.py::test_a_role_or_profile_that_does_not_exist",),
        upstream="EC2 AssociateIamInstanceProfile / ReplaceIamInstanceProfileAssociation / RunInstances with an "
        "instance profile that does not exist return IAM's NoSuchEntity; AWS returns InvalidParameterValue "
        "`Value (X) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name` "
        "(`.arn` for an ARN).",
    ),
    Fix(
        name="tags_follow_ec2s_restrictions",
        kind="fidelity",
        aws="EC2 refuses a tag (CreateTags on any resource, any TagSpecification) whose key starts with aws:, whose "
        "key is over 128 or value over 256 characters, or that holds a character XML cannot carry, with "
        "InvalidParameterValue: `Value ( aws:x ) for parameter key is invalid. Tag keys starting with 'aws:' are "
        "reserved for internal use`, `Tag value exceeds the maximum length of 256 characters`, …; it takes any "
        "other character",
        dependency="moto takes every tag, and writes a character such as ESC (U+001B) raw into its XML: "
        "DescribeInstances (and the RunInstances that carried it) is then an answer botocore cannot parse, so "
        "`aws ec2 describe-instances` and `labkit status` failed until the tag was removed",
        targets=(Target("moto.ec2.responses", "EC2Response"),
                 Target("moto.core.responses", "BaseResponse._authenticate_and_authorize_normal_action",
                        ("self", "resource")),
                 Target("moto.core.responses", "BaseResponse.call_action", ("self",)),  # answers its HTTPException
                 Target("moto.core.responses", "BaseResponse.serialized", ("self", "action_result")),
                 Target("moto.core.responses", "BaseResponse._get_action", ("self",)),
                 Target("moto.core.responses", "ActionResult"),
                 Target("moto.core.base_backend", "BaseBackend.url_paths"),
                 Target("moto.ec2.urls", "url_paths"),
                 Target("moto.ec2.exceptions", "InvalidParameterValue", ("message",)), INSTALLS_EC2),
        apply=tags.tags_follow_ec2s_restrictions,
        seam=EC2_SUBCLASS,
        proved_by=("tests/test_tags.py::test_create_tags_refuses_what_ec2_refuses_in_ec2s_words",
                   "tests/test_tags.py::test_a_launch_whose_tags_ec2_refuses_launches_nothing",
                   "tests/test_tags.py::test_any_resources_tags_are_checked_and_what_ec2_takes_is_kept_as_given",
                   "tests/test_tags.py::test_the_aws_cli_shows_ec2s_refusal_in_one_line",
                   "tests/test_tags.py::test_only_a_caller_ec2_authenticates_and_authorizes_has_its_tags_checked"),
        upstream="EC2 CreateTags and every TagSpecification accept any key and value. AWS refuses, with "
        "InvalidParameterValue, keys starting with aws: (`Value ( aws:x ) for parameter key is invalid. Tag keys "
        "starting with 'aws:' are reserved for internal use`), keys over 128 and values over 256 characters (`Tag "
        "value exceeds the maximum length of 256 characters`). A character XML 1.0 cannot carry (U+001B, say) is "
        "written raw into DescribeInstances and DescribeTags, which no client can then parse. Fix: check the tags "
        "in TagResponse.create_tags and wherever a TagSpecification is read.",
    ),
    Fix(
        name="managed_policies_once",
        kind="speed",
        aws="(speed) AWS's managed policies exist in the lab's partition, aws",
        dependency="moto parses its ~1,600 managed policies again for every IAM backend, one per partition "
        "(aws-cn, aws-us-gov, …), whenever it looks up an access key's account: 0.2 s each, after every reset",
        targets=(Target(IAM_BACKEND, "IAMBackend._init_aws_policies", ("self",)),
                 Target(IAM_BACKEND, "aws_managed_policies_data"),
                 Target(IAM_BACKEND, "AWSManagedPolicy"), INSTALLS_IAM),
        apply=speed.managed_policies_once,
        seam=IAM_SUBCLASS,
        proved_by=("tests/test_motofixes.py::test_the_lab_holds_aws_managed_policies",),
    ),
    Fix(
        name="region_lists_not_kept_per_backend",
        kind="memory",
        aws="(memory) a reset frees the backends it replaces",
        dependency="moto caches AccountSpecificBackend._generate_regions with functools.cache, which keeps every "
        "backend container it was called on alive, with its EC2 backend (about 4 MB per reset)",
        targets=(Target("moto.core.base_backend", "AccountSpecificBackend._generate_regions.__wrapped__",
                        ("self", "service_name")),),
        apply=speed.region_lists_not_kept_per_backend,
        seam="setattr: a functools cache on AccountSpecificBackend, which BackendDict makes by name",
        proved_by=("tests/test_backends.py::test_a_reset_frees_the_backends_it_replaces",),
        upstream="AccountSpecificBackend._generate_regions is a method cached with functools.cache: the cache "
        "holds a reference to every AccountSpecificBackend it was called on, so backends that "
        "moto_api_backend.reset() replaces are never freed. Its result depends only on service_name: cache "
        "a module-level function of service_name instead.",
    ),
    Fix(
        name="subnet_addresses_kept_on_the_subnet",
        kind="memory",
        aws="(memory) a reset frees the subnets it replaces",
        dependency="moto caches Subnet._base_avail_ip_iterator with functools.cache, which keeps every subnet "
        "(and its backend) alive",
        targets=(Target("moto.ec2.models.subnets", "Subnet._base_avail_ip_iterator", ("self",)),
                 Target("moto.ec2.models.subnets", "Subnet.get_available_subnet_ip", ("self", "instance"))),
        apply=speed.subnet_addresses_kept_on_the_subnet,
        seam="setattr: a functools cache on Subnet, a model class made by name",
        proved_by=("tests/test_backends.py::test_a_reset_frees_the_backends_it_replaces",
                   "tests/test_backends.py::test_instances_in_one_subnet_get_successive_addresses"),
        upstream="Subnet._base_avail_ip_iterator is cached with functools.cache on the method, so the cache keeps "
        "every Subnet (and through it its EC2 backend) alive after a reset. Keep the iterator on the subnet.",
    ),
    Fix(
        name="requests_decided_by_the_labs_evaluator",
        kind="fidelity",
        aws="IAM decides every request by its documented logic (IAM User Guide, \"Policy evaluation logic\"): "
        "an explicit Deny first; identity-based policies of the user, its groups or the role, with conditions, "
        "policy variables, NotAction and NotResource, on the resource the request names; a role's trust policy for "
        "AssumeRole (one naming the account delegates to the account's principals whose policies allow "
        "sts:AssumeRole); permissions boundaries; session policies; iam:PassRole (with iam:PassedToService "
        "ec2.amazonaws.com) to attach or launch with a role. Refusals end as AWS's do (`because no identity-based "
        "policy allows the ACTION action`, `… no permissions boundary allows …`, `… no session policy allows …`, "
        "`with an explicit deny in an identity-based policy`); EC2's are UnauthorizedOperation, with an encoded "
        "message outside Describe actions",
        dependency="moto matches actions and resources with wildcards against the resource `*`; it ignores "
        "conditions, policy variables, boundaries, session policies and iam:PassRole, fails with a TypeError on a "
        "trust policy that names a service, lets no one assume a role that trusts the account, and refuses in a "
        "short sentence of its own (`User: ARN is not authorized to perform: iam:CreateUser`), AccessDenied for EC2",
        targets=(Target("moto.iam.access_control", "IAMRequestBase.check_action_permitted", ("self", "resource")),
                 Target("moto.iam.access_control", "AssumedRoleAccessKey.collect_policies", ("self",)),
                 Target("moto.iam.access_control", "IAMUserAccessKey.collect_policies", ("self",)),
                 Target("moto.core.exceptions", "_RESTError.__init__", ("self", "error_type", "message")),
                 Target("moto.sts.models", "AssumedRole.__init__", ("self", "account_id", "region_name")),
                 Target(IAM_BACKEND, "IAMBackend.get_role_by_arn", ("self", "arn")),
                 Target(IAM_BACKEND, "IAMBackend.get_instance_profile_by_arn", ("self", "profile_arn")),
                 Target(IAM_BACKEND, "IAMBackend.list_user_tags", ("self", "user_name")),
                 Target("moto.ec2.models", "ec2_backends")),
        apply=decisions.requests_decided_by_the_labs_evaluator,
        seam="setattr: moto's ActionAuthenticatorMixin makes IAMRequest by name and calls its "
        "check_action_permitted, which raises before any answer exists for the middleware to read; "
        "AssumedRole is made by name in STSBackend.assume_role",
        proved_by=("tests/test_lab.py::test_what_no_policy_allows_is_refused_in_aws_words",
                   "tests/test_role_credentials.py::test_ec2_refuses_a_role_with_unauthorized_operation_and_a_message",
                   "tests/test_role_credentials.py::test_only_ec2_may_assume_a_role_that_trusts_only_ec2",
                   "tests/test_decisions.py::test_attaching_a_role_needs_pass_role_and_the_refusal_decodes_to_it",
                   "tests/test_decisions.py::test_a_boundary_limits_the_roles_sessions_on_the_instance",
                   "tests/test_decisions.py::test_a_role_that_trusts_the_account_is_assumed_by_an_allowed_principal",
                   "tests/test_decisions.py::test_an_explicit_deny_says_where_it_is"),
        upstream="Authorization evaluates every request against the resource `*` and ignores Condition, policy "
        "variables, permissions boundaries (PutRolePermissionsBoundary is stored, never read), session policies "
        "(AssumeRole's Policy is stored, never read) and iam:PassRole; a trust policy naming the account root "
        "matches no caller, one naming only a service raises TypeError; refusals stop after the action. AWS's "
        "logic is documented in the IAM User Guide's \"Policy evaluation logic\" and its flow chart.",
    ),
    Fix(
        name="buckets_decided_by_the_labs_evaluator",
        kind="fidelity",
        aws="S3 decides a request with the caller's policies and the bucket's policy together (a resource-based "
        "policy: its Principal and Condition decide whom a statement applies to, so a Deny for one role's sessions "
        "leaves the administrator alone); a request that is not signed is the anonymous principal's, refused "
        "403 AccessDenied `Access Denied` unless a bucket policy allows `\"Principal\": \"*\"`; refusals are "
        "S3's `<Error><Code>AccessDenied</Code>` with IAM's sentence (`… on resource: \"arn:aws:s3:::BUCKET/KEY\" "
        "because no identity-based policy allows the s3:GetObject action`), DynamoDB's AccessDeniedException",
        dependency="moto first decides an object request with the bucket's policy alone, ignoring its Principal and "
        "Condition (a Deny for anyone is a Deny for everyone, answered with an empty 403), answers a request that is "
        "not signed with an empty 403 for a private object and a KeyError (500) for one a bucket policy opens to "
        "everyone, names HeadBucket and the public "
        "access block after the API rather than IAM's actions, and wraps refusals of S3 and DynamoDB in IAM's XML",
        targets=(Target("moto.s3.models", "FakeBucket.get_permission", ("self", "action", "resource")),
                 Target("moto.core.authorization", "ActionAuthenticatorMixin._authenticate_and_authorize_s3_action",
                        ("self", "bucket_name", "key_name")),
                 Target("moto.s3.responses", "S3Response._key_response", ("self", "request", "full_url")),
                 Target("moto.s3.responses", "S3Response.parse_key_name", ("self",)),
                 Target("moto.s3.exceptions", "S3AccessDeniedError"),
                 Target("moto.s3.exceptions", "S3ClientError"),
                 Target("moto.core.exceptions", "JsonRESTError"),
                 Target("moto.s3.models", "s3_backends")),
        apply=buckets.buckets_decided_by_the_labs_evaluator,
        seam="setattr: moto's S3Response reads the bucket's policy through FakeBucket.get_permission and authorizes "
        "through the mixin's method, both by name, before any answer exists for the middleware to read",
        proved_by=("tests/test_storage.py::test_a_bucket_policy_deny_for_the_role_leaves_the_administrator_alone",
                   "tests/test_storage.py::test_an_unsigned_request_is_the_anonymous_principals",
                   "tests/test_storage.py::test_refusals_are_in_s3s_and_dynamodbs_words"),
        upstream="S3: FakeBucket.get_permission matches a bucket policy's actions and resources only (its "
        "Principal and Condition are ignored) and refuses with an empty 403 before the caller is known; an "
        "unsigned GET of an object a bucket policy opens to everyone raises KeyError('HTTP_AUTHORIZATION') in "
        "S3IAMRequest. AWS evaluates bucket policies with the caller's policies (IAM User Guide, \"Policy evaluation "
        "logic\"; S3 User Guide, \"How Amazon S3 authorizes a request\").",
    ),
    Fix(
        name="new_buckets_block_public_access",
        kind="fidelity",
        aws="since April 2023 every new bucket has all four Block Public Access settings on (S3 User Guide, \"Blocking "
        "public access to your Amazon S3 storage\"): PutBucketPolicy with a public policy is refused (AccessDenied, "
        "`… because public policies are blocked by the BlockPublicPolicy block public access setting.`), and a bucket "
        "whose policy is public answers only principals of its own account (RestrictPublicBuckets)",
        dependency="moto makes buckets without a PublicAccessBlock and enforces none it is given: a public policy is "
        "taken, and anyone on the network reads what it allows",
        targets=(Target("moto.s3.models", "S3Backend.create_bucket", ("self", "bucket_name", "region_name")),
                 Target("moto.s3.models", "PublicAccessBlock.__init__",
                        ("self", "block_public_acls", "ignore_public_acls", "block_public_policy",
                         "restrict_public_buckets"))),
        apply=buckets.new_buckets_block_public_access,
        seam="setattr: moto's S3 responses call S3Backend.create_bucket by name; the backend has no subclass seam yet",
        proved_by=("tests/test_storage.py::test_a_new_bucket_blocks_public_access",),
        upstream="S3 CreateBucket: new buckets have no PublicAccessBlock, and PutBucketPolicy and object reads "
        "ignore one that is set. Since April 2023 AWS enables all four settings on every new bucket, refuses public "
        "bucket policies under BlockPublicPolicy and limits public buckets to the owner's account under "
        "RestrictPublicBuckets.",
    ),
    Fix(
        name="multipart_upload_ids_replay",
        kind="lab",
        aws="(lab) every acknowledged change comes back after a crash: a multipart upload (`aws s3 cp` of a file of "
        "8 MB or more) replays with its parts",
        dependency="moto draws each multipart upload's id from os.urandom, outside the lab's seeded and journaled "
        "draws: a replayed CreateMultipartUpload gets another id, so the UploadPart journaled after it fails and it "
        "and every later change are dropped",
        targets=(Target("moto.s3.models", "FakeMultipart.__init__",
                        ("self", "key_name", "metadata", "account_id", "region_name")),),  # fmt: skip
        apply=buckets.multipart_upload_ids_replay,
        seam="setattr: S3Backend.create_multipart_upload makes FakeMultipart by name, which draws its id as it is made",
        proved_by=("tests/test_storage.py::test_a_multipart_upload_comes_back_after_kill_9",),
    ),
    Fix(  # the option `labkit up --iam-delay SECONDS` (labkit/labprocess/propagation.py); off, it notes nothing
        name="role_changes_reach_sessions_after_the_delay",
        kind="fidelity",
        aws="IAM is eventually consistent: a role's policy change (Attach/DetachRolePolicy, Put/DeleteRolePolicy) "
        "takes seconds to reach requests signed by the role's sessions (IAM User Guide, troubleshooting: "
        "changes are not always immediately visible)",
        dependency="moto's access control reads the role's policies as they are now, so a session sees a change at "
        "once; with `--iam-delay`, the lab's sessions see the role as it was that many seconds ago",
        targets=(Target("moto.iam.access_control", "AssumedRoleAccessKey.collect_policies", ("self",)),
                 Target("moto.iam.access_control", "AssumedRoleAccessKey.backend"),
                 Target(IAM_BACKEND, "IAMBackend.attach_role_policy", ("self", "policy_arn", "role_name")),
                 Target(IAM_BACKEND, "IAMBackend.detach_role_policy", ("self", "policy_arn", "role_name")),
                 Target(IAM_BACKEND, "IAMBackend.put_role_policy", ("self", "role_name", "policy_name", "policy_json")),
                 Target(IAM_BACKEND, "IAMBackend.delete_role_policy", ("self", "role_name", "policy_name")),
                 Target(IAM_BACKEND, "IAMBackend.delete_role", ("self", "role_name")),
                 Target(IAM_BACKEND, "IAMBackend.get_role", ("self", "role_name")), INSTALLS_IAM),
        apply=iam_delay.sessions_see_role_changes_after_the_delay,
        seam="setattr: moto's access control makes AssumedRoleAccessKey by name and reads the role through the same "
        "backend methods the IAM API answers from, so no backend method is asked only for a session; the changes "
        "themselves are noted by a mixin of the IAM backend subclass",
        proved_by=("tests/test_propagation.py::test_a_role_session_keeps_a_detached_policy_until_the_delay_has_passed",
                   "tests/test_propagation.py::test_an_inline_policy_reaches_role_sessions_after_the_delay_too"),
        upstream="With authorization on, IAM changes reach every caller at once. AWS's IAM is eventually "
        "consistent (a detached policy keeps allowing a role's sessions for seconds), which code under test "
        "must retry around. An opt-in setting (say MOTO_IAM_PROPAGATION_SECONDS) under which "
        "AssumedRoleAccessKey.collect_policies sees the role as it was that long ago would let tests exercise it.",
    ),
    Fix(
        name="new_profiles_reach_ec2_after_the_delay",
        kind="fidelity",
        aws="EC2 does not know an instance profile for a few seconds after CreateInstanceProfile: RunInstances, "
        "AssociateIamInstanceProfile and ReplaceIamInstanceProfileAssociation answer InvalidParameterValue `Value "
        "(X) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name` (EC2 User Guide, "
        "IAM roles for Amazon EC2: if the first launch with a role fails, wait a few seconds)",
        dependency="moto's EC2 takes a profile as soon as IAM made it; with `--iam-delay`, the lab's EC2 refuses a "
        "profile younger than that many seconds",
        targets=(Target(EC2_INSTANCES, "InstanceBackend.run_instances",
                        ("self", "image_id", "count", "user_data", "security_group_names")),
                 Target("moto.ec2.models.iam_instance_profile",
                        "IamInstanceProfileAssociationBackend.associate_iam_instance_profile",
                        ("self", "instance_id", "iam_instance_profile_name", "iam_instance_profile_arn")),
                 Target("moto.ec2.models.iam_instance_profile",
                        "IamInstanceProfileAssociationBackend.replace_iam_instance_profile_association",
                        ("self", "association_id", "iam_instance_profile_name", "iam_instance_profile_arn")),
                 Target(IAM_BACKEND, "IAMBackend.create_instance_profile", ("self", "name")),
                 Target(IAM_BACKEND, "IAMBackend.delete_instance_profile", ("self", "name")),
                 Target("moto.ec2.exceptions", "EC2ClientError"), INSTALLS_IAM, INSTALLS_EC2),
        apply=iam_delay.ec2_sees_new_profiles_after_the_delay,
        seam=EC2_SUBCLASS,
        proved_by=("tests/test_propagation.py::test_ec2_refuses_a_new_instance_profile_until_the_delay_has_passed",),
        upstream="EC2 RunInstances, AssociateIamInstanceProfile and ReplaceIamInstanceProfileAssociation accept an "
        "instance profile the moment IAM has made it. AWS refuses it for a few seconds with InvalidParameterValue "
        "`Value (X) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name`, which "
        "deployment tools retry on; an opt-in propagation setting would let their tests see it.",
    ),
    Fix(
        name="a_role_session_names_no_user",
        kind="fidelity",
        aws="GetUser (and ListAccessKeys, ListMFADevices, ListSigningCertificates, ListSSHPublicKeys) without "
        "UserName, signed with credentials of no IAM user (a role's session): 400 ValidationError `Must specify "
        "userName when calling with non-User credentials`",
        dependency="moto answers GetUser with a user it makes up (`default_user`, exit status 0) and the List "
        "calls with NoSuchEntity (`The Access Key with id ASIA… cannot be found`, `The user with name None cannot "
        "be found.`)",
        targets=(Target("moto.iam.responses", "IamResponse.get_user", ("self",)),
                 Target("moto.iam.responses", "IamResponse.list_access_keys", ("self",)),
                 Target(IAM_BACKEND, "IAMBackend.get_user_from_access_key_id", ("self", "access_key_id")),
                 Target(IAM_BACKEND, "iam_backends")),
        apply=role_credentials.a_role_session_names_no_user,
        seam=MIDDLEWARE,
        proved_by=("tests/test_role_credentials.py::test_get_user_with_role_credentials_asks_for_a_user_name",
                   "tests/test_role_credentials.py::test_calls_that_default_to_the_callers_user_ask_a_role_for_one"),
        upstream="IAM GetUser without UserName, signed with an assumed role's credentials, returns a made-up "
        "`default_user`; ListAccessKeys returns NoSuchEntity for the session's key and ListMFADevices `The user "
        "with name None cannot be found.`. AWS answers all of them 400 ValidationError `Must specify userName "
        "when calling with non-User credentials`.",
    ),
    Fix(
        name="sts_decodes_the_labs_messages",
        kind="fidelity",
        aws="STS DecodeAuthorizationMessage, for a caller allowed sts:DecodeAuthorizationMessage, answers the "
        "refusal an encoded message stands for (`DecodedMessage`: allowed, explicitDeny, matchedStatements, "
        "failures, context: principal, action, resource, conditions); a message it did not make, or one that "
        "expired, is InvalidAuthorizationMessageException (400)",
        dependency="moto has no DecodeAuthorizationMessage: after authorizing the caller it raises "
        "NotImplementedError, which its server answers with an HTML page and status 500 that the CLI cannot parse",
        targets=(Target("moto.core.responses", "BaseResponse.call_action", ("self",)),
                 Target("moto.sts.responses", "TokenResponse"),
                 Target("moto.settings", "INITIAL_NO_AUTH_ACTION_COUNT")),
        apply=authorization.sts_decodes_the_labs_messages,
        seam=MIDDLEWARE,
        proved_by=("tests/test_role_credentials.py::test_a_principal_allowed_to_decode_reads_why_it_was_refused",
                   "tests/test_role_credentials.py::test_only_this_lab_process_can_decode_its_messages",
                   "tests/test_role_credentials.py::test_a_decode_before_a_restart_neither_survives_it_nor_stops_it"),
        upstream="STS DecodeAuthorizationMessage is not implemented: the server answers 500 (NotImplementedError). "
        "With EC2's refusals carrying an encoded message (UnauthorizedOperation), DecodeAuthorizationMessage could "
        "answer the DecodedMessage JSON AWS documents: allowed, explicitDeny, matchedStatements, failures and "
        "context (principal, action, resource, conditions).",
    ),
    Fix(
        name="simulations_answered_by_the_evaluator",
        kind="fidelity",
        aws="IAM's policy simulator (SimulatePrincipalPolicy, SimulateCustomPolicy) answers, for each action and "
        "resource, EvalDecision (allowed, explicitDeny, implicitDeny), MatchedStatements and MissingContextValues, "
        "by the same logic that decides requests",
        dependency="moto has neither action: after authorizing the caller it raises NotImplementedError, which its "
        "server answers with an HTML page and status 500 that the CLI retries and cannot parse",
        targets=(Target("moto.core.responses", "BaseResponse.call_action", ("self",)),
                 Target("moto.iam.responses", "IamResponse")),
        apply=simulation.simulations_answered_by_the_evaluator,
        seam=MIDDLEWARE,
        proved_by=("tests/test_decisions.py::test_the_simulator_says_why_as_the_lab_decides",
                   "tests/test_decisions.py::test_a_custom_policy_is_simulated_with_its_context"),
        upstream="SimulatePrincipalPolicy and SimulateCustomPolicy are not implemented (NotImplementedError, an HTML "
        "500). They could answer EvaluationResults from the policies moto holds, as IAM's API reference documents.",
    ),
    Fix(
        name="sts_refusals_say_why",
        kind="fidelity",
        aws="GetSessionToken signed with a session's credentials is AccessDenied `Cannot call GetSessionToken with "
        "session credentials`, whatever the session's policies allow",
        dependency="moto gives a session allowed sts:GetSessionToken a session token",
        targets=(Target("moto.sts.responses", "TokenResponse.get_session_token", ("self",)),),
        apply=authorization.sts_refusals_say_why,
        seam=MIDDLEWARE,
        proved_by=("tests/test_role_credentials.py::test_sts_refuses_a_role_session_in_aws_words",),
        upstream="GetSessionToken signed with temporary credentials succeeds; AWS refuses it: AccessDenied `Cannot "
        "call GetSessionToken with session credentials`.",
    ),
    Fix(
        name="role_last_used_names_its_region",
        kind="fidelity",
        aws="GetRole's RoleLastUsed gives the date and the Region of the role's last use: `{\"LastUsedDate\": …, "
        "\"Region\": \"us-east-1\"}`",
        dependency="moto records the date when a request is signed with one of the role's sessions, never the Region",
        targets=(Target(IAM_BACKEND, "mark_account_as_visited", ("account_id", "access_key", "service", "region")),
                 Target(IAM_BACKEND, "Role.role_last_used"),
                 Target(IAM_BACKEND, "NotFoundException")),
        apply=role_credentials.role_last_used_names_its_region,
        seam="setattr: a module function moto's BaseResponse imports by name for every request; no backend "
        "method is asked when a key is used",
        proved_by=("tests/test_role_credentials.py::test_get_role_answers_in_aws_shape_with_where_it_was_last_used",),
        upstream="mark_account_as_visited sets role.last_used when a request is signed with a role's session, but not "
        "role.last_used_region, so GetRole's RoleLastUsed has a LastUsedDate and no Region. AWS gives both.",
    ),
    Fix(
        name="what_moto_lacks_says_so",
        kind="lab",
        aws="(lab) an action the lab does not emulate says so by name, in one line: 501 NotImplemented, `The lab "
        "does not emulate iam:SimulatePrincipalPolicy: …`",
        dependency="moto raises NotImplementedError for an action it does not implement (SimulatePrincipalPolicy, "
        "SimulateCustomPolicy, ListServiceSpecificCredentials, …), which its server answers with an HTML page and "
        "status 500; the CLI retries four times, then prints `Unable to parse response`",
        targets=(Target("moto.core.responses", "BaseResponse.call_action", ("self",)),
                 Target("moto.core.utils", "camelcase_to_underscores", ("argument",))),
        apply=fidelity.what_moto_lacks_says_so,
        seam=MIDDLEWARE,
        proved_by=("tests/test_role_credentials.py::test_an_action_moto_lacks_says_so_at_once",),
    ),
    # -- what the lab needs from moto beyond its API; the code runs where `where` says ---------------
    Fix(
        name="admin_keys_chosen_by_the_lab",
        kind="lab",
        aws="(lab) the administrator's access key is the lab's, the same across a crash and a restore",
        dependency="moto's CreateAccessKey makes its own key; the lab replaces it in IAMBackend.access_keys, "
        "keyed by the key's physical_resource_id",
        targets=(Target(IAM_BACKEND, "IAMBackend.create_access_key", ("self", "user_name")),
                 Target(IAM_BACKEND, "AccessKey.physical_resource_id")),
        apply=None,
        where="backends.Cloud.bootstrap",
        proved_by=("tests/test_lab.py::test_env_makes_a_terminal_aws_act_as_the_administrator",
                   "tests/test_journal.py::test_a_killed_lab_comes_back_as_it_was"),
        required=True,
    ),
    Fix(
        name="replay_without_authorization",
        kind="lab",
        aws="(lab) a restored lab replays its journal's requests as they were acknowledged",
        dependency="moto checks each request's signature and policies while settings.INITIAL_NO_AUTH_ACTION_COUNT "
        "allows; the lab sets it to infinity while it replays",
        targets=(Target("moto.settings", "INITIAL_NO_AUTH_ACTION_COUNT"),),
        apply=None,
        where="replay.replaying",
        proved_by=("tests/test_journal.py::test_a_killed_lab_comes_back_as_it_was",),
        required=True,
    ),
    Fix(
        name="ids_follow_the_lab_seed",
        kind="lab",
        aws="(lab) the same steps give the same ids: a student's run and `labkit reset --to NN` agree",
        dependency="moto draws its ids from moto.moto_api._internal.mock_random; the lab seeds it and keeps one "
        "state per kind of change",
        targets=(Target("moto.moto_api._internal", "mock_random.seed"),
                 Target("moto.moto_api._internal", "mock_random.getstate"),
                 Target("moto.moto_api._internal", "mock_random.setstate"),
                 Target("moto.moto_api._internal.models", "moto_api_backend.reset")),
        apply=None,
        where="backends.Cloud._fresh and recovery.Recovery._drawing",
        proved_by=("tests/test_isolation.py::test_two_labs_at_the_same_checkpoint_share_ids_but_never_keys",
                   "tests/test_journal.py::test_copied_credentials_keep_their_role_across_a_role_switch_and_a_crash"),
        required=True,
    ),
    Fix(
        name="role_sessions_minted_in_the_lab",
        kind="lab",
        aws="EC2 assumes the instance's role as ec2.amazonaws.com, and the session is named after the instance",
        dependency="moto's STS, with authorization on, cannot assume a role for a service principal; the lab "
        "calls STSBackend.assume_role itself",
        targets=(Target("moto.sts.models", "STSBackend.assume_role",
                        ("self", "region_name", "role_session_name", "role_arn", "policy", "duration",
                         "external_id")),),
        apply=None,
        where="sessions.RoleSessions._mint",
        proved_by=("tests/test_backends.py::test_the_session_is_named_after_the_instance",),
        required=True,
    ),
    # -- the warm aws server -------------------------------------------------------------------------
    Fix(
        name="service_lists_remembered",
        kind="speed",
        aws="(speed) the installed packages' data directories do not change while the warm aws runs",
        dependency="botocore lists the services in each data directory again for every new session",
        targets=(Target("botocore.loaders", "Loader.list_available_services", ("self",)),
                 Target("botocore.loaders", "Loader.search_paths")),
        apply=warm_aws.service_lists_remembered,
        seam="setattr: every botocore session makes its own Loader by name; the aws CLI offers no seam",
        proved_by=("tests/test_cliserver.py::test_the_warm_aws_prints_exactly_what_a_fresh_one_prints",),
        processes=(CLI,),
    ),
    Fix(
        name="event_names_aliased_once",
        kind="speed",
        aws="(speed) botocore's event aliases do not change while the warm aws runs",
        dependency="botocore works out each event's aliased name again in every new session (~390 handlers)",
        targets=(Target("botocore.hooks", "EventAliaser._alias_event_name", ("self", "event_name")),
                 Target("botocore.hooks", "EVENT_ALIASES"),
                 Target("botocore.hooks", "logger")),
        apply=warm_aws.event_names_aliased_once,
        seam="setattr: every botocore session makes its own EventAliaser by name",
        proved_by=("tests/test_cliserver.py::test_with_debug_the_warm_aws_logs_what_a_fresh_one_logs",),
        processes=(CLI,),
    ),
    Fix(
        name="handler_signatures_read_once",
        kind="speed",
        aws="(speed) a handler's signature does not change while the warm aws runs",
        dependency="botocore asks inspect whether each handler takes **kwargs every time one is registered",
        targets=(Target("botocore.hooks", "accepts_kwargs", ("func",)),),
        apply=warm_aws.handler_signatures_read_once,
        seam="setattr: a module function botocore.hooks calls by name",
        proved_by=("tests/test_cliserver.py::test_the_warm_aws_prints_exactly_what_a_fresh_one_prints",),
        processes=(CLI,),
    ),
    Fix(
        name="paths_follow_each_commands_home",
        kind="lab",
        aws="(lab) each command of the warm aws reads ~/.aws of its own instance, as a fresh aws process does",
        dependency="botocore computes paths under HOME when it is imported (Loader.CUSTOMER_DATA_PATH, "
        "JSONFileCache.CACHE_DIR, …); the warm server finds every such path once and repoints it per command",
        targets=(Target("botocore.loaders", "Loader.CUSTOMER_DATA_PATH"),
                 Target("botocore.utils", "JSONFileCache.CACHE_DIR")),
        apply=None,
        where="cliserver.paths_from_home and cliserver.repoint",
        proved_by=("tests/test_cliserver.py::test_paths_the_cli_takes_from_home_at_import_follow_each_command",),
        required=True,
        processes=(CLI,),
    ),
)  # fmt: skip


def by_name(name: str) -> Fix:
    """The record called `name`."""
    return next(fix for fix in REGISTRY if fix.name == name)
