"""The review questions of notebook 06, with answers revealed or checked on demand.

from labkit import quiz
quiz.ask(1)            # the question and its choices; the answer stays folded until clicked
quiz.check(1, "b")     # ✓ and why, or ✗ and why that choice is wrong
for n in range(1, quiz.count() + 1): display(quiz.ask(n))

Each question asks one or more of the lesson's points (POINTS), and every point is asked by exactly
one question. Every choice, right or wrong, carries its reason.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from labkit.errors import QuestionNotFound

POINTS: dict[int, str] = {
    1: "never `aws configure` long-term access keys on an instance",
    2: "a role's credentials come from the metadata service, temporary and rotated",
    3: "the trust policy lets ec2.amazonaws.com call sts:AssumeRole; permissions policies say what the role may do",
    4: "an instance profile carries the role to the instance",
    5: "attach a role at launch or to a running instance, with no reboot",
    6: "one role per instance; more permissions means more policies on that role",
    7: "policy changes apply on the next request, without new credentials or a reboot",
    8: "the credential provider chain: a leftover ~/.aws/credentials wins over the role",
    9: "IMDSv2: a session token from a PUT, sent with every GET",
    10: "the metadata service names the role but never shows its policies",
    11: "least privilege with common managed policies",
    12: "Lambda and ECS get role credentials without the instance metadata service",
    13: "iam:PassRole: whoever gives a role to an instance must be allowed to pass it to EC2",
    14: "a leaked role session works until it expires, unless its sessions are revoked",
    15: "a permissions boundary limits what the role's policies grant and grants nothing itself",
}


@dataclass(frozen=True)
class Question:
    """One multiple-choice question: the right letter with `why`, each wrong letter with its reason."""

    number: int
    topic: str
    points: tuple[int, ...]
    text: str
    choices: dict[str, str]
    answer: str
    why: str
    why_not: dict[str, str]

    def __str__(self) -> str:
        lines = [f"Question {self.number}. {self.text}"]
        lines += [f"  ({letter}) {choice}" for letter, choice in self.choices.items()]
        lines.append(f"Check yourself: quiz.check({self.number}, LETTER), or open the answer in JupyterLab.")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        choices = "".join(f"<li><b>({k})</b> {html.escape(v)}</li>" for k, v in self.choices.items())
        others = "".join(f"<li><b>({k})</b> {html.escape(v)}</li>" for k, v in sorted(self.why_not.items()))
        return (
            f"<p><b>Question {self.number}.</b> {html.escape(self.text)}</p><ul style='list-style:none'>{choices}</ul>"
            f"<details><summary>Show the answer</summary><p><b>({self.answer})</b> {html.escape(self.why)}</p>"
            f"<p>Why not the others:</p><ul style='list-style:none'>{others}</ul></details>"
        )


@dataclass(frozen=True)
class Verdict:
    right: bool
    text: str

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


QUESTIONS = (
    Question(
        number=1,
        topic="access keys on an instance",
        points=(1,),
        text="An application on an EC2 instance must call AWS. What is wrong with running `aws configure` there "
        "with an IAM user's access key?",
        choices={
            "a": "Nothing lasting: the key stops working once the instance is stopped or terminated",
            "b": "AWS refuses access keys in requests that come from an EC2 instance's address",
            "c": "The key sits in plain text in ~/.aws/credentials, works from anywhere and never expires",
            "d": "Nothing: `aws configure` encrypts the key with the instance's key pair, so copies are useless",
        },
        answer="c",
        why="`aws configure` writes the key and its secret in plain text to ~/.aws/credentials. Anyone who reads "
        "that file, a backup or a snapshot of the disk can use the key from any network, and it keeps working until "
        "someone deactivates or deletes it. A role leaves no secret on the disk.",
        why_not={
            "a": "An IAM user's access key has no expiry and is tied to no instance: it keeps working until someone "
            "deactivates or deletes it, long after the instance is gone.",
            "b": "Access keys work from any network, EC2 included. That is part of the danger: a copied key works "
            "just as well from someone else's laptop.",
            "d": "`aws configure` encrypts nothing, and the key pair only logs you in over SSH. Anyone who can read "
            "~/.aws/credentials, a backup or a disk snapshot has the key.",
        },
    ),
    Question(
        number=2,
        topic="where a role's credentials come from",
        points=(2,),
        text="An application on an instance with a role calls AWS through an SDK, with no keys configured. "
        "Where do its credentials come from?",
        choices={
            "a": "The metadata service at 169.254.169.254: temporary keys (ASIA…) that AWS renews",
            "b": "A file ~/.aws/credentials that EC2 writes on the instance when the role is attached",
            "c": "The metadata service at 169.254.169.254: a permanent access key (AKIA…) made for the role",
            "d": "STS, which the SDK calls itself, signing AssumeRole with the instance's SSH key pair",
        },
        answer="a",
        why="The SDKs and the CLI ask the Instance Metadata Service (169.254.169.254, reachable only from the "
        "instance) for the role's credentials: a temporary ASIA… key id, its secret, a session token and an "
        "Expiration. AWS makes new credentials available at least five minutes before the old ones expire, and the "
        "SDK fetches them again by itself.",
        why_not={
            "b": "Attaching a role writes no file. The SDK fetches the credentials over HTTP and keeps them in memory; "
            "~/.aws/credentials exists only if someone runs `aws configure`.",
            "c": "A role has no long-term access key; AKIA… keys are long-term user keys. What the instance is "
            "given is short-lived: a key id, a secret, a session token and an Expiration.",
            "d": "A key pair only logs you in over SSH; it never signs AWS requests. The instance does not assume the "
            "role itself: EC2 does it on the instance's behalf.",
        },
    ),
    Question(
        number=3,
        topic="the trust policy",
        points=(3,),
        text="You create a role for EC2 by hand. What must its trust policy allow, and to whom?",
        choices={
            "a": "The actions the application needs, such as s3:GetObject, to the instances that run it",
            "b": "The action iam:PassRole, to the service principal ec2.amazonaws.com",
            "c": "The action sts:AssumeRole, to the instance's ID (i-…) as the principal",
            "d": "The action sts:AssumeRole, to the service principal ec2.amazonaws.com",
        },
        answer="d",
        why='The trust policy says who may assume the role: here {"Effect": "Allow", "Principal": {"Service": '
        '"ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}. What the role may then do is said by its permissions '
        "policies, such as notebook 04's ReadAppData, which allows s3:GetObject on the bucket's config/ objects and "
        "dynamodb:GetItem on the orders table. The console writes this trust policy for you when you choose EC2 as the "
        "trusted service.",
        why_not={
            "a": "What the role may do belongs in its permissions policies. The trust policy says only who may assume "
            "the role, and instances are not principals it can name.",
            "b": "iam:PassRole is a permission of the person who launches the instance or attaches the role, granted "
            "in that person's own policies. It has no place in a trust policy.",
            "c": "An instance ID is not a principal a trust policy can name. The EC2 service assumes the role for "
            "the instance, so it is the service that must be trusted.",
        },
    ),
    Question(
        number=4,
        topic="the instance profile",
        points=(4,),
        text="You created a role with `aws iam create-role` and attached its policies. What else is needed before "
        "EC2 can give the role to an instance?",
        choices={
            "a": "Nothing: pass the role's ARN to `aws ec2 run-instances --iam-instance-profile`",
            "b": "An instance profile: create-instance-profile, then add-role-to-instance-profile",
            "c": "Nothing: IAM creates an instance profile with the role's name for every new role",
            "d": "An access key for the role, placed in the instance's user data at launch",
        },
        answer="b",
        why="EC2 hands a role to an instance through an instance profile, a container that holds one role. The "
        "console creates a profile of the same name when you create a role for EC2 there; with the CLI or the API "
        "you run `aws iam create-instance-profile` and `aws iam add-role-to-instance-profile` yourself.",
        why_not={
            "a": "EC2 takes an instance profile (its name or its ARN), never a role, and create-role makes no "
            "profile: a role's ARN there is refused as an invalid instance profile.",
            "c": "Only the IAM console does that, when you create a role for EC2 there. The CLI, the SDKs and the API "
            "never create an instance profile on their own.",
            "d": "Roles have no access keys (create-access-key is for users), and user data is readable by any "
            "process on the instance through the metadata service: it is no place for secrets.",
        },
    ),
    Question(
        number=5,
        topic="attaching a role",
        points=(5,),
        text="An instance was launched without a role and now runs an application. How do you give it a role?",
        choices={
            "a": "Associate an instance profile with it (Modify IAM role); no restart is needed",
            "b": "Stop it, set its instance profile while it is stopped, then start it again",
            "c": "You cannot: a role is given only at launch, in RunInstances' IamInstanceProfile",
            "d": "Associate an instance profile, then reboot so the metadata service picks it up",
        },
        answer="a",
        why="At launch you name the profile in RunInstances (IamInstanceProfile). On a running instance, "
        "AssociateIamInstanceProfile (`aws ec2 associate-iam-instance-profile`, the console's Actions → Security → "
        "Modify IAM role) attaches it with no stop and no reboot: the metadata service serves the role's credentials "
        "shortly after.",
        why_not={
            "b": "The instance profile is not one of the settings that need a stopped instance: "
            "AssociateIamInstanceProfile works on a running one.",
            "c": "Launch is one way, not the only one: AssociateIamInstanceProfile attaches a profile to an instance "
            "that is already running.",
            "d": "No reboot is needed: shortly after the association the metadata service serves the role's "
            "credentials, and the next `aws` command uses them.",
        },
    ),
    Question(
        number=6,
        topic="one role per instance",
        points=(6,),
        text="An instance holds role A through its instance profile. Its application now also needs what role B "
        "allows. What works?",
        choices={
            "a": "Associate role B's instance profile as well; the instance then has both roles",
            "b": "Add role B to role A's instance profile, so that the profile carries both",
            "c": "Attach the policies the application needs to role A, the instance's only role",
            "d": "Replace the association with B's profile; the instance keeps A's permissions too",
        },
        answer="c",
        why="An instance has at most one instance profile, and a profile holds one role. A second association "
        "fails with IncorrectState, and ReplaceIamInstanceProfileAssociation switches to another profile rather "
        "than adding one. To allow more, attach more policies to the role the instance already has.",
        why_not={
            "a": "An instance has at most one instance profile association: a second AssociateIamInstanceProfile "
            "fails with IncorrectState.",
            "b": "An instance profile holds at most one role, a quota that cannot be raised: IAM refuses a second "
            "role with LimitExceeded.",
            "d": "ReplaceIamInstanceProfileAssociation swaps the profile: afterwards the instance has role B only, "
            "and loses everything role A allowed.",
        },
    ),
    Question(
        number=7,
        topic="changing a role's policies",
        points=(7,),
        text="You detach IAMReadOnlyAccess from the role of a running instance. When is `aws iam list-users` on "
        "that instance denied?",
        choices={
            "a": "After the instance is rebooted and the SDK fetches the role's permissions again",
            "b": "When its current temporary credentials expire and the metadata service issues new ones",
            "c": "After you disassociate its instance profile and associate it again",
            "d": "On its next request, with the same credentials, once IAM has propagated the change",
        },
        answer="d",
        why="Permissions are not in the credentials: IAM checks every request against the role's policies as they "
        "are at that moment. After a short propagation on AWS (usually seconds; at once in the lab) the next call "
        "gets AccessDenied, with no new credentials and no reboot.",
        why_not={
            "a": "Nothing on the instance holds the role's permissions, so there is nothing to reload: IAM evaluates "
            "the role's current policies on every request.",
            "b": "Credentials prove who is calling; they do not carry the role's policies. Credentials that have not "
            "expired are denied as well.",
            "c": "The association names the role, not a copy of its permissions. The role is the same, only its "
            "policies changed, and IAM reads them on every request.",
        },
    ),
    Question(
        number=8,
        topic="the credential provider chain",
        points=(8,),
        text="An instance holds a role, and someone once ran `aws configure` on it with an IAM user's key. Which "
        "credentials does `aws s3 ls` on the instance use?",
        choices={
            "a": "The role's, since a role takes precedence; `aws configure list` shows Type iam-role",
            "b": "The user's key; `aws configure list` shows Type shared-credentials-file",
            "c": "Both: the CLI signs with the role's and the user's, so their permissions add up",
            "d": "Neither: the CLI stops with an error when it finds two sources of credentials",
        },
        answer="b",
        why="The CLI looks for credentials in order (the SDKs too, less the command-line options): command-line "
        "options, environment variables, ~/.aws/credentials and ~/.aws/config, then a container endpoint, and only "
        "last the instance metadata service. The leftover key wins over the role. `aws configure list` shows the "
        "source in its Type column: shared-credentials-file here, iam-role once the key is removed from the file. Try "
        "it in notebook 04 while alice's key is in the file: `aws s3 ls` is refused, and the refusal names "
        "user/alice, not the role.",
        why_not={
            "a": "A role takes no precedence: the CLI asks the metadata service only when no earlier source in its "
            "chain (options, environment, files) has credentials.",
            "c": "Each request is signed with one set of credentials, the first the CLI finds; the permissions of "
            "two identities never add up.",
            "d": "The CLI never compares sources: it takes the first one in its chain that has credentials and "
            "ignores the rest, without a warning.",
        },
    ),
    Question(
        number=9,
        topic="IMDSv2",
        points=(9,),
        text="Why does requiring IMDSv2 (HttpTokens=required) protect a role's credentials better than IMDSv1?",
        choices={
            "a": "IMDSv2 encrypts the credentials so that only the SDK on the instance can read them",
            "b": "Every GET must carry a token from a PUT, which most SSRF holes cannot send",
            "c": "IMDSv2 credentials only work in requests sent from the instance's own IP address",
            "d": "IMDSv2 answers only processes running as root, not other users on the instance",
        },
        answer="b",
        why="A caller first sends PUT /latest/api/token with an X-aws-ec2-metadata-token-ttl-seconds header, then "
        "sends the token in X-aws-ec2-metadata-token with every GET. A server tricked into fetching a URL (SSRF) "
        "can usually only send GETs; a PUT with X-Forwarded-For, as proxies add, gets no token; and a low hop limit "
        "keeps the token's reply from travelling beyond the instance. With HttpTokens=required, a request without a "
        "token gets 401 Unauthorized.",
        why_not={
            "a": "The credentials come back as plain JSON either way. IMDSv2 guards the way in with a token; anything "
            "that gets a token can read them.",
            "c": "IMDSv2 hands out the same kind of temporary credentials as IMDSv1; once stolen, they work from "
            "anywhere until they expire. It makes them harder to steal, not less useful.",
            "d": "IMDSv2 does not look at users: any process on the instance that can send the PUT gets a token. "
            "Keeping users away from it takes a local firewall rule.",
        },
    ),
    Question(
        number=10,
        topic="where a role's policies can be read",
        points=(10,),
        text="On an instance, you want to know which policies its role has. Where do you find them?",
        choices={
            "a": "In iam/info from the metadata service, which lists the role's attached policies",
            "b": "In the output of `aws sts get-caller-identity`, after the role's ARN",
            "c": "In the session token, which carries the role's policies in a readable form",
            "d": "In IAM, with `aws iam list-attached-role-policies`, if the role may call it",
        },
        answer="d",
        why="The metadata service names the role (iam/security-credentials/ lists it; iam/info gives the instance "
        "profile) but never shows its policies. They live in IAM: `aws iam list-attached-role-policies --role-name "
        "NAME` (and list-role-policies for inline ones) answers only if the caller is allowed to, for instance "
        "through IAMReadOnlyAccess.",
        why_not={
            "a": "iam/info gives the instance profile's ARN and id, and iam/security-credentials/ the role's name; "
            "the metadata service never shows a role's policies.",
            "b": "get-caller-identity prints the account, the user id and the assumed-role ARN, nothing about "
            "policies (and it needs no permission at all).",
            "c": "The session token is opaque: no policies can be read out of it. IAM looks up the role's current "
            "policies on each request; they are not in the credentials.",
        },
    ),
    Question(
        number=11,
        topic="least privilege with managed policies",
        points=(11,),
        text="An application on an instance only reads objects from S3, and admins reach the instance through "
        "Session Manager. Which AWS managed policies fit its role best?",
        choices={
            "a": "AmazonS3ReadOnlyAccess and AmazonSSMManagedInstanceCore",
            "b": "AmazonS3FullAccess and AmazonSSMManagedInstanceCore",
            "c": "AmazonS3ReadOnlyAccess and CloudWatchAgentServerPolicy",
            "d": "AmazonS3FullAccess alone: Session Manager uses the admin's own permissions",
        },
        answer="a",
        why="AmazonS3ReadOnlyAccess allows reading and listing S3, nothing more. AmazonSSMManagedInstanceCore lets "
        "the SSM Agent on the instance work with Systems Manager, so admins open Session Manager shells without an "
        "SSH key. CloudWatchAgentServerPolicy is for instances that run the CloudWatch agent. (An account can also "
        "give its instances Systems Manager access through its Default Host Management Configuration instead.) "
        "Notebook 04 grants less still: an inline policy allowing s3:GetObject on one bucket's config/ objects, "
        "under which the instance reads them and its upload is AccessDenied.",
        why_not={
            "b": "AmazonS3FullAccess also lets the instance write and delete objects and buckets. An application that "
            "only reads needs read access only: grant the least that works.",
            "c": "CloudWatchAgentServerPolicy lets the CloudWatch agent send metrics and logs; it does not let "
            "Systems Manager manage the instance, which Session Manager needs.",
            "d": "AmazonS3FullAccess grants writes and deletes the application never makes, and the admin's "
            "permission to start a session is not enough: the SSM Agent on the instance must itself be allowed to "
            "talk to Systems Manager.",
        },
    ),
    Question(
        number=12,
        topic="roles for Lambda and ECS",
        points=(12,),
        text="A Lambda function and an ECS task each have a role. How do the SDKs in them get that role's credentials?",
        choices={
            "a": "Both from the instance metadata service at 169.254.169.254, exactly as on EC2",
            "b": "Lambda from a credentials file in /tmp; ECS from ~/.aws/credentials in the image",
            "c": "Lambda: environment variables (AWS_SESSION_TOKEN…); ECS: 169.254.170.2",
            "d": "Both from environment variables that hold a permanent access key made for the role",
        },
        answer="c",
        why="Lambda assumes the execution role and gives the function its temporary credentials as environment "
        "variables: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (Java functions with SnapStart "
        "use a local credentials endpoint instead). ECS sets AWS_CONTAINER_CREDENTIALS_RELATIVE_URI in the task's "
        "containers, and the SDK fetches the task role's credentials from 169.254.170.2 at that path. Neither uses "
        "the instance metadata service.",
        why_not={
            "a": "Lambda offers no instance metadata service, and in ECS the metadata service (where a task can reach "
            "it at all) belongs to the host instance: it gives the instance's role, not the task's.",
            "b": "Neither service writes a credentials file, and a key baked into an image would be a long-term "
            "secret again, the very thing roles avoid.",
            "d": "Roles have no permanent access keys: whatever a service hands over are temporary credentials, with "
            "a session token and an expiry.",
        },
    ),
    Question(
        number=13,
        topic="passing a role to EC2",
        points=(13,),
        text="An operator may call ec2:AssociateIamInstanceProfile on every instance, yet attaching DemoRoleForEC2's "
        "profile is refused with UnauthorizedOperation. What is missing, and where?",
        choices={
            "a": "sts:AssumeRole on the role, in the operator's own policies, since the operator takes the role on",
            "b": "iam:PassRole, in the role's trust policy, granted to the principal ec2.amazonaws.com",
            "c": "iam:PassRole on the role, in the operator's policies, for iam:PassedToService ec2.amazonaws.com",
            "d": "iam:GetInstanceProfile, in the role's permissions policies, so that EC2 can read its profile",
        },
        answer="c",
        why="Giving a role to an instance (RunInstances with a profile, AssociateIamInstanceProfile, "
        "ReplaceIamInstanceProfileAssociation) passes the role to EC2, and AWS checks iam:PassRole against the "
        "caller's own identity-based policies. iam:PassRole is a permission, not an API action. Grant it on that "
        "role's ARN only, with the condition iam:PassedToService = ec2.amazonaws.com: without PassRole, anyone "
        "allowed to launch instances could hand any role, however powerful, to an instance they control (IAM User "
        'Guide, "Grant a user permissions to pass a role to an AWS service").',
        why_not={
            "a": "The operator never assumes the role: EC2 does, for the instance, as the trust policy allows. What "
            "AWS asks of the operator is the permission to hand the role over, not to use it.",
            "b": "A trust policy says who may assume the role; ec2.amazonaws.com is already there. Passing a role is "
            "a permission of the person who hands it over, granted in that person's own policies.",
            "d": "The instance's role needs no permission for EC2 to deliver it; the refusal is about the caller of "
            "AssociateIamInstanceProfile, and its decoded message names the action AWS wanted from that caller.",
        },
    ),
    Question(
        number=14,
        topic="a leaked role session",
        points=(14,),
        text="Credentials of an instance's role were copied off the instance and are being used from elsewhere. "
        "What cuts the copies off at once, and leaves the instance its role?",
        choices={
            "a": "Detach the role's policies for good: the copies lose every permission, the instance keeps its own",
            "b": "Revoke active sessions: a deny for every session issued before now (aws:TokenIssueTime)",
            "c": "Nothing is needed: the metadata service rotates the credentials, and rotation ends the copied set",
            "d": "Delete the role: the copies name a role that is gone, and the instance gets new credentials",
        },
        answer="b",
        why="A copied set of role credentials works from anywhere until its Expiration. The role's Revoke active "
        "sessions (IAM console) adds the inline policy AWSRevokeOlderSessions, which denies every action when "
        "aws:TokenIssueTime is before that moment: every session issued earlier is refused at once, the copies and "
        "the instance's current one alike, and sessions issued afterwards are not affected (IAM User Guide, "
        '"Revoke IAM role temporary security credentials").',
        why_not={
            "a": "IAM evaluates the same policies for the instance's session and the copies: detaching them denies "
            "the instance too, and attaching them back lets the copies in again, since they have not expired.",
            "c": "New credentials do not end the old ones: a copied set keeps working until its own Expiration, "
            "hours away, whatever the metadata service hands out meanwhile.",
            "d": "Deleting the role takes it from the instance as well: IAM warns that deleting a role or instance "
            "profile associated with a running instance will break any applications running on the instance. "
            "A role made again under the same name is a new role.",
        },
    ),
    Question(
        number=15,
        topic="permissions boundaries",
        points=(15,),
        text="DemoRoleForEC2 has IAMReadOnlyAccess attached, and you set AmazonEC2ReadOnlyAccess as its permissions "
        "boundary. What may the instance do with the role now?",
        choices={
            "a": "Read IAM and read EC2: the boundary adds its permissions to those of the role's policies",
            "b": "Read EC2 only: while a boundary is set, it takes the place of the role's own policies",
            "c": "Read IAM only: boundaries apply to IAM users, and IAM ignores the boundary of a role",
            "d": "Neither read IAM nor EC2: it may only do what the policies and the boundary both allow",
        },
        answer="d",
        why="A permissions boundary sets the most that identity-based policies can grant; it grants nothing itself. "
        "An action is allowed only if both allow it: effective permissions = identity-based policies ∩ boundary. "
        "IAMReadOnlyAccess allows IAM's Get and List actions, AmazonEC2ReadOnlyAccess allows EC2's Describe actions "
        'and no IAM action: `aws iam list-users` is denied "because no permissions boundary allows" it, and '
        "`aws ec2 describe-instances` gets UnauthorizedOperation, since none of the role's policies allows it (IAM "
        'User Guide, "Permissions boundaries for IAM entities").',
        why_not={
            "a": "A boundary never grants: it only caps what the identity-based policies grant. An action the role's "
            "policies do not allow stays denied, whatever the boundary says.",
            "b": "A boundary grants nothing of its own, so it cannot stand in for the policies: an action must be "
            "allowed by the role's policies and by the boundary alike.",
            "c": "A permissions boundary can be set on a user or on a role, and IAM checks it on every request the "
            "role's sessions make, an instance's included.",
        },
    ),
)


def count() -> int:
    """How many questions there are: `for n in range(1, quiz.count() + 1): display(quiz.ask(n))`."""
    return len(QUESTIONS)


def ask(number: int) -> Question:
    """Question `number` (1 to `count()`), to display; its answer stays folded."""
    last = len(QUESTIONS)
    menu = f"the questions are 1 to {last}: quiz.ask(1) … quiz.ask({last})."
    if isinstance(number, bool) or not isinstance(number, int):
        raise QuestionNotFound(f"A question number is a whole number, not {number!r}; {menu}")
    if not 1 <= number <= last:
        raise QuestionNotFound(f"There is no question {number}; {menu}")
    return QUESTIONS[number - 1]


def check(number: int, choice: str) -> Verdict:
    """Whether `choice` ("a" to "d") answers question `number`, and why; a wrong choice gets its own reason."""
    question = ask(number)
    picked = choice.strip().strip("()").lower() if isinstance(choice, str) else ""
    if picked not in question.choices:
        return Verdict(False, f"Choose one of {', '.join(question.choices)} for question {number}.")
    if picked == question.answer:
        return Verdict(True, f"✓ Right. {question.why}")
    return Verdict(
        False,
        f"✗ Not ({picked}). {question.why_not[picked]} "
        f"Read question {number} again (quiz.ask({number})) and try another letter, or open the answer under it.",
    )
